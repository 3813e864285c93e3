//! Regressions found by attacking the council's `k` endorsements (a review of the change that
//! made motions need them). The endorsement set was not part of what the agreement agreed on
//! (prepares and commits signed only the value's digest), yet `Council::apply` decides by it:
//!
//! - a faulty member re-sent a real decision with the endorsements trimmed to the `f + 1` floor,
//!   and an honest agent that had not yet collected the commits decided the same value with
//!   fewer endorsers, so its council refused what the others applied (councils diverged);
//! - a faulty leader put a second, under-endorsed pre-prepare of a value into its view change
//!   with the honest prepares, and the new view decided it with 2 endorsers: refused everywhere.
//!
//! Now prepares, commits and the log chain vote for the value *and* its endorser set. Also: a
//! threshold above `n − f` let one silent member stop every motion; motions now need at most
//! `n − f` endorsements.
//!
//! The tests rebuild the wire bodies (postcard, the field order of `byzantine.rs`) and sign them
//! with `sign_raw`, as a faulty member would.

use chrysalis_crypto::SigningKey;
use chrysalis_memory::byzantine::{Recipient, sign_raw};
use chrysalis_memory::{
    Agreement, AgreementConfig, AgreementEvent, Council, Membership, Motion, PublicKey, Signature,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
struct Endorsement {
    sender: u16,
    signature: Signature,
}
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Commit {
    view: u64,
    seq: u64,
    digest: [u8; 32],
}
#[derive(Serialize, Deserialize, Clone)]
struct SignedCommit {
    sender: u16,
    body: Commit,
    signature: Signature,
}
#[derive(Serialize, Deserialize)]
struct Decision {
    seq: u64,
    value: Vec<u8>,
    endorsements: Vec<Endorsement>,
    commits: Vec<SignedCommit>,
}

const REQUEST: u8 = 0;
const COMMIT: u8 = 3;
const DECISION: u8 = 7;

fn sender(bytes: &[u8]) -> u16 {
    u16::from_le_bytes([bytes[2], bytes[3]])
}
fn signature(bytes: &[u8]) -> Signature {
    Signature(bytes[4..68].try_into().unwrap())
}

/// A council of four (f = 1) in one scope: the keys, their public keys, the membership, and
/// one agreement replica per member ordering at `order_at`.
struct Four {
    keys: Vec<SigningKey>,
    publics: Vec<PublicKey>,
    membership: Membership,
    agents: Vec<Agreement>,
}

fn four(seed: u8, order_at: usize) -> Four {
    let keys: Vec<SigningKey> = (0..4u8)
        .map(|i| SigningKey::from_seed(&[i + seed; 32]).unwrap())
        .collect();
    let publics: Vec<PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let membership = Membership::new(publics.clone()).unwrap().within("room/doc");
    let agents = keys
        .iter()
        .map(|k| {
            let key = SigningKey::from_seed(&*k.seed()).unwrap();
            let mut agent =
                Agreement::new(key, membership.clone(), AgreementConfig::default(), 0).unwrap();
            agent.set_order_at(1, order_at);
            agent
        })
        .collect();
    Four {
        keys,
        publics,
        membership,
        agents,
    }
}

#[test]
fn a_trimmed_decision_makes_honest_councils_diverge() {
    let n = 4; // f = 1, floor f + 1 = 2
    let k = 3; // the council's threshold (f + 1 ..= n - f)
    let Four {
        keys,
        publics,
        membership,
        mut agents,
    } = four(1, k);
    // Member 3 is faulty; it runs the protocol (so it sees everything) and then forges.
    let honest = [0usize, 1, 2];
    let mut councils: Vec<Council> = (0..n)
        .map(|_| Council::new(publics.clone(), k).unwrap())
        .collect();

    let motion = Motion::AcceptFact([7; 32]);
    let value = motion.to_bytes();
    let mut queue: Vec<(usize, Recipient, Vec<u8>)> = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut decided: Vec<Option<Vec<usize>>> = vec![None; n];
    let mut held_for_2 = 0;
    for &i in &honest {
        let out = agents[i].propose(1, value.clone()).unwrap();
        queue.extend(out.transmits.into_iter().map(|t| (i, t.to, t.bytes)));
    }
    // The network (or the faulty member, relaying) holds the others' commits back from agent 2.
    while let Some((from, to, bytes)) = queue.pop() {
        seen.push(bytes.clone());
        for dest in 0..n {
            let wanted = match to {
                Recipient::Everyone => dest != from,
                Recipient::Member(m) => m == dest,
            };
            if !wanted {
                continue;
            }
            if dest == 2 && bytes[1] == COMMIT {
                held_for_2 += 1;
                continue;
            }
            let out = agents[dest].handle_message(1, &bytes);
            for e in out.events {
                if let AgreementEvent::Decided { endorsers, .. } = e {
                    decided[dest] = Some(endorsers);
                }
            }
            queue.extend(out.transmits.into_iter().map(|t| (dest, t.to, t.bytes)));
        }
    }
    assert!(held_for_2 > 0);
    assert_eq!(
        decided[0].as_ref().map(Vec::len),
        Some(3),
        "0 decided with k endorsers"
    );
    assert_eq!(
        decided[1].as_ref().map(Vec::len),
        Some(3),
        "1 decided with k endorsers"
    );
    assert!(decided[2].is_none(), "2 still waits for commits");

    // The faulty member's DECISION: the honest quorum's real commits, the endorsements cut to
    // two real requests (the f + 1 floor every agent checks on a DECISION).
    let commits: Vec<SignedCommit> = seen
        .iter()
        .filter(|b| b[1] == COMMIT)
        .map(|b| SignedCommit {
            sender: sender(b),
            body: postcard::from_bytes(&b[68..]).unwrap(),
            signature: signature(b),
        })
        .fold(Vec::new(), |mut v, c| {
            if !v.iter().any(|x: &SignedCommit| x.sender == c.sender) {
                v.push(c);
            }
            v
        })
        .into_iter()
        .take(3)
        .collect();
    let endorsements: Vec<Endorsement> = seen
        .iter()
        .filter(|b| b[1] == REQUEST && (sender(b) == 0 || sender(b) == 1))
        .map(|b| Endorsement {
            sender: sender(b),
            signature: signature(b),
        })
        .fold(Vec::new(), |mut v, e| {
            if !v.iter().any(|x: &Endorsement| x.sender == e.sender) {
                v.push(e);
            }
            v
        });
    let body = postcard::to_allocvec(&Decision {
        seq: 1,
        value: value.clone(),
        endorsements,
        commits,
    })
    .unwrap();
    let forged = sign_raw(&membership, &keys[3], DECISION, &body).unwrap();
    let out = agents[2].handle_message(2, &forged);
    for e in out.events {
        if let AgreementEvent::Decided { endorsers, .. } = e {
            decided[2] = Some(endorsers);
        }
    }
    assert_eq!(
        agents[2].decision(1),
        None,
        "the trimmed decision is refused"
    );
    assert_eq!(agents[2].stats().rejected.get("BAD_PROOF"), Some(&1));
    // The real commits reach agent 2 late: it decides with the same endorsers as the others.
    for bytes in seen.iter().filter(|b| b[1] == COMMIT) {
        for e in agents[2].handle_message(3, bytes).events {
            if let AgreementEvent::Decided { endorsers, .. } = e {
                decided[2] = Some(endorsers);
            }
        }
    }
    assert_eq!(agents[2].decision(1), Some(value.as_slice()));

    // Each honest agent applies its decided motion with its endorsers, as the page does.
    let mut results = Vec::new();
    for &i in &honest {
        let by: Vec<_> = decided[i]
            .as_ref()
            .unwrap()
            .iter()
            .map(|&e| publics[e])
            .collect();
        results.push(councils[i].apply(&motion, &by).map_err(|e| e.code()));
    }
    assert_eq!(results, vec![Ok(()); 3]);
    assert_eq!(
        councils[0], councils[2],
        "honest councils diverged after the same slot: {results:?}"
    );
}

#[derive(Serialize, Deserialize, Clone)]
struct PrePrepare {
    view: u64,
    seq: u64,
    value: Vec<u8>,
    endorsements: Vec<Endorsement>,
}
#[derive(Serialize, Deserialize, Clone)]
struct SignedPrePrepare {
    sender: u16,
    body: PrePrepare,
    signature: Signature,
}
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Prepare {
    view: u64,
    seq: u64,
    digest: [u8; 32],
}
#[derive(Serialize, Deserialize, Clone)]
struct SignedPrepare {
    sender: u16,
    body: Prepare,
    signature: Signature,
}
#[derive(Serialize, Deserialize, Clone)]
struct PreparedProof {
    pre_prepare: SignedPrePrepare,
    prepares: Vec<SignedPrepare>,
}
#[derive(Serialize, Deserialize, Clone)]
struct ViewChange {
    view: u64,
    stable: u64,
    state: [u8; 32],
    checkpoint_proof: Vec<SignedPrepare>, // always empty here
    prepared: Vec<PreparedProof>,
}
const PRE_PREPARE: u8 = 1;
const PREPARE: u8 = 2;
const VIEW_CHANGE: u8 = 5;

/// A faulty leader of view 0 orders a value k honest members requested (all prepare it), then
/// puts a second pre-prepare of the same value, endorsed at the f + 1 floor, into its view
/// change with the honest prepares. Those prepares vote for the first pre-prepare's endorser
/// set, so the forged certificate is refused and the new view decides the value with its `k`
/// endorsers (it used to decide it with 2, and every council refused it: the motion was burned).
#[test]
fn a_faulty_leader_burns_a_k_endorsed_motion_through_new_view() {
    let n = 4;
    let k = 3;
    let Four {
        keys,
        publics,
        membership,
        mut agents,
    } = four(11, k);
    let faulty = 0usize; // leader of view 0
    let honest = [1usize, 2, 3];
    let motion = Motion::AcceptFact([9; 32]);
    let value = motion.to_bytes();
    let mut decided: Vec<Option<Vec<usize>>> = vec![None; n];
    let mut seen: Vec<Vec<u8>> = Vec::new();

    let mut queue: Vec<(usize, Recipient, Vec<u8>)> = Vec::new();
    for &i in &honest {
        let out = agents[i].propose(1, value.clone()).unwrap();
        queue.extend(out.transmits.into_iter().map(|t| (i, t.to, t.bytes)));
    }
    // Phase 1: run view 0, the network drops every COMMIT (nobody decides in view 0).
    let run = |agents: &mut Vec<Agreement>,
               queue: &mut Vec<(usize, Recipient, Vec<u8>)>,
               seen: &mut Vec<Vec<u8>>,
               decided: &mut Vec<Option<Vec<usize>>>,
               now: u64,
               drop_commits: bool,
               faulty_active: bool| {
        while !queue.is_empty() {
            let (from, to, bytes) = queue.remove(0);
            seen.push(bytes.clone());
            if from == faulty && !faulty_active {
                continue;
            }
            for dest in 0..n {
                let wanted = match to {
                    Recipient::Everyone => dest != from,
                    Recipient::Member(m) => m == dest,
                };
                if !wanted || (drop_commits && bytes[1] == COMMIT) {
                    continue;
                }
                if dest == faulty && !faulty_active {
                    continue;
                }
                let out = agents[dest].handle_message(now, &bytes);
                for e in out.events {
                    if let AgreementEvent::Decided { endorsers, .. } = e {
                        decided[dest] = Some(endorsers);
                    }
                }
                queue.extend(out.transmits.into_iter().map(|t| (dest, t.to, t.bytes)));
            }
        }
    };
    run(
        &mut agents,
        &mut queue,
        &mut seen,
        &mut decided,
        1,
        true,
        true,
    );
    assert!(decided.iter().all(Option::is_none));

    // The faulty leader's second pre-prepare of the same value at the f + 1 floor.
    let grab = |seen: &Vec<Vec<u8>>, kind: u8| -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for b in seen.iter().filter(|b| b[1] == kind) {
            if !out.iter().any(|o| sender(o) == sender(b)) {
                out.push(b.clone());
            }
        }
        out
    };
    let endorsements: Vec<Endorsement> = grab(&seen, REQUEST)
        .iter()
        .filter(|b| sender(b) == 1 || sender(b) == 2)
        .map(|b| Endorsement {
            sender: sender(b),
            signature: signature(b),
        })
        .collect();
    assert_eq!(endorsements.len(), 2);
    let pp_body = PrePrepare {
        view: 0,
        seq: 1,
        value: value.clone(),
        endorsements,
    };
    let pp_bytes = sign_raw(
        &membership,
        &keys[faulty],
        PRE_PREPARE,
        &postcard::to_allocvec(&pp_body).unwrap(),
    )
    .unwrap();
    let pre_prepare = SignedPrePrepare {
        sender: 0,
        body: pp_body,
        signature: signature(&pp_bytes),
    };
    let prepares: Vec<SignedPrepare> = grab(&seen, PREPARE)
        .iter()
        .filter(|b| sender(b) != 0)
        .map(|b| SignedPrepare {
            sender: sender(b),
            body: postcard::from_bytes(&b[68..]).unwrap(),
            signature: signature(b),
        })
        .collect();
    assert_eq!(prepares.len(), 3);
    let vc = ViewChange {
        view: 1,
        stable: 0,
        state: [0; 32],
        checkpoint_proof: vec![],
        prepared: vec![PreparedProof {
            pre_prepare,
            prepares,
        }],
    };
    let vc_bytes = sign_raw(
        &membership,
        &keys[faulty],
        VIEW_CHANGE,
        &postcard::to_allocvec(&vc).unwrap(),
    )
    .unwrap();
    for &i in &honest {
        let out = agents[i].handle_message(2, &vc_bytes);
        queue.extend(out.transmits.into_iter().map(|t| (i, t.to, t.bytes)));
    }
    // Phase 2: the honest agents time out (the leader is now silent) and change view.
    for &i in &honest {
        let out = agents[i].handle_tick(60_000);
        queue.extend(out.transmits.into_iter().map(|t| (i, t.to, t.bytes)));
    }
    run(
        &mut agents,
        &mut queue,
        &mut seen,
        &mut decided,
        60_001,
        false,
        false,
    );
    let mut results = Vec::new();
    for &i in &honest {
        let mut council = Council::new(publics.clone(), k).unwrap();
        let by: Vec<_> = decided[i]
            .as_ref()
            .expect("decided")
            .iter()
            .map(|&e| publics[e])
            .collect();
        results.push(council.apply(&motion, &by).map_err(|e| e.code()));
    }
    assert!(
        results.iter().all(Result::is_ok),
        "a motion all {k} honest members requested was decided and refused everywhere: {results:?}"
    );
}

/// The council accepts any threshold up to n (a 4-of-4 council: beads need every approval), but
/// motions need at most n − f endorsements: one silent member used to stop every motion,
/// including the one that would lower k again.
#[test]
fn one_silent_member_stalls_a_council_whose_threshold_is_above_n_minus_f() {
    let Four {
        publics,
        mut agents,
        ..
    } = four(31, 4);
    let council = Council::new(publics, 4).expect("k = n is accepted");
    let value = Motion::SetThreshold(3).to_bytes();
    let mut queue: Vec<(usize, Recipient, Vec<u8>)> = Vec::new();
    // Member 3 is silent: only the first three run.
    let live = &mut agents[..3];
    for (i, agent) in live.iter_mut().enumerate() {
        let out = agent.propose(1, value.clone()).unwrap();
        queue.extend(out.transmits.into_iter().map(|t| (i, t.to, t.bytes)));
    }
    let mut now = 1;
    for _ in 0..200 {
        while !queue.is_empty() {
            let (from, to, bytes) = queue.remove(0);
            for (dest, agent) in live.iter_mut().enumerate() {
                let wanted = match to {
                    Recipient::Everyone => dest != from,
                    Recipient::Member(m) => m == dest,
                };
                if wanted {
                    let out = agent.handle_message(now, &bytes);
                    queue.extend(out.transmits.into_iter().map(|t| (dest, t.to, t.bytes)));
                }
            }
        }
        now += 1_000;
        for (i, agent) in live.iter_mut().enumerate() {
            let out = agent.handle_tick(now);
            queue.extend(out.transmits.into_iter().map(|t| (i, t.to, t.bytes)));
        }
    }
    assert_eq!(council.motion_endorsements(), 3);
    assert!(
        live.iter().all(|a| a.is_decided(&value)),
        "3 honest members of 4 asked to lower k, member 3 is silent: nothing decided in {now} ms"
    );
}
