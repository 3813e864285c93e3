//! How many times a received change's bytes are copied between the frame and the CRDT, measured
//! by counting the bytes allocated while the node handles one frame that carries a large delta.
//! Its own test binary, so its counting allocator sees nothing of other tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::collections::{BTreeMap, BTreeSet};

use chrysalis_crdt::{CausalContext, Dot, Encode, ORSet, ORSetDelta, ReplicaId};
use chrysalis_crypto::SigningKey;
use chrysalis_sync::{SyncConfig, SyncNode};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
/// The counters are global: one test counts at a time.
static SERIAL: Mutex<()> = Mutex::new(());

// SAFETY: every call goes to the system allocator unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: the caller's layout contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        }
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated while `f` runs.
fn allocated_by<R>(f: impl FnOnce() -> R) -> (usize, R) {
    ALLOCATED.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let out = f();
    COUNTING.store(false, Ordering::Relaxed);
    (ALLOCATED.load(Ordering::Relaxed), out)
}

fn node(seed: u8) -> SyncNode {
    let key = SigningKey::from_seed(&[seed; 32]).unwrap();
    let mut node = SyncNode::new(key, SyncConfig::default(), 0, seed.into());
    node.share(0, "set", Box::new(ORSet::<String>::new()))
        .unwrap();
    node
}

/// A received change is copied once on its way into the CRDT: when its delta decodes into the
/// OR-Set's entries, which the join then moves into the set. The frame's signature is checked
/// over a digest streamed where the bytes lie, and the frame and gossip payloads are borrowed
/// from the received bytes. (In the page, wasm-bindgen's copy of the received `Uint8Array`
/// into wasm memory comes first: two in all.) Before frame version 3 this measured 6.02.
#[test]
fn a_received_change_reaches_the_crdt_with_one_copy_of_its_bytes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut a, mut b) = (node(1), node(2));
    a.add_peer(0, b.id());
    b.add_peer(0, a.id());
    let element = "x".repeat(200_000);
    let set: &mut ORSet<String> = a.document_mut("set").unwrap();
    let delta = set.add(ReplicaId(1), element.clone()).to_bytes();
    a.local_change(1, "set", delta).unwrap();
    let out = a.flush_changes(1);
    let frame = &out.transmits[0].bytes;

    let (allocated, heard) = allocated_by(|| b.handle_message(1, a.id(), frame));

    assert_eq!(heard.events.len(), 1, "the change was applied");
    let copies = allocated as f64 / element.len() as f64;
    println!(
        "{allocated} bytes allocated to receive a {} byte element: {copies:.2} copies",
        element.len()
    );
    assert!(
        (1.0..1.1).contains(&copies),
        "{copies:.2} copies of the element's bytes"
    );
}

/// Regression (review): an OR-Set kept a copy of an element per dot in its dot index, and a
/// delta may give one element any number of dots (about 3 bytes each on the wire): a 62 kB
/// frame made every receiver hold 200 MB, and anti-entropy spread it to the whole room. The
/// element is now held once, whatever its dots.
#[test]
fn an_element_with_thousands_of_dots_is_held_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut a, mut b) = (node(1), node(2));
    a.add_peer(0, b.id());
    b.add_peer(0, a.id());
    let element = "y".repeat(50_000);
    let dots: BTreeSet<Dot> = (1..=4_000)
        .map(|counter| Dot {
            replica: ReplicaId(9),
            counter,
        })
        .collect();
    let mut ctx = CausalContext::default();
    dots.iter().for_each(|d| ctx.insert(*d));
    let delta = ORSetDelta::from_parts(
        BTreeMap::from([(element.clone(), dots)]),
        BTreeSet::new(),
        ctx,
    )
    .unwrap();
    a.local_change(1, "set", delta.to_bytes()).unwrap();
    let out = a.flush_changes(1);
    let frame = &out.transmits[0].bytes;
    assert!(frame.len() < 70_000, "a {} byte frame", frame.len());

    let (allocated, heard) = allocated_by(|| b.handle_message(1, a.id(), frame));
    assert_eq!(heard.events.len(), 1, "the change was applied");
    println!(
        "{allocated} bytes allocated to receive a {} byte frame",
        frame.len()
    );
    // 200 MB before; the 4,000 dots' index entries are what is left.
    assert!(
        allocated < 2_000_000,
        "{allocated} bytes allocated for a {} byte frame",
        frame.len()
    );
}
