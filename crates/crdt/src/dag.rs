//! A content-addressed Merkle DAG: each node is named by the BLAKE3 hash of its canonical
//! encoding (parents and payload), so a node's name commits to its whole history. The DAG is a
//! grow-only set of nodes; `missing` lets sync ship only what a peer lacks.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::encoding::impl_encode;
use crate::{
    Crdt, CrdtError,
    encoding::{self, Encode},
};

/// A node name: the BLAKE3 hash of the node's canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeHash(pub [u8; 32]);

impl NodeHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A node: parent links and an opaque payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagNode {
    /// The nodes this one follows, sorted and without duplicates.
    pub parents: Vec<NodeHash>,
    /// What the node carries.
    pub payload: Vec<u8>,
}

/// Version of the canonical node encoding that hashes are computed over.
const NODE_ENCODING_VERSION: u8 = 1;
/// The most parents a node may have.
pub const MAX_PARENTS: usize = 1024;

impl DagNode {
    /// A node with `parents` (sorted and deduplicated here) and `payload`.
    pub fn new(parents: impl IntoIterator<Item = NodeHash>, payload: Vec<u8>) -> Self {
        let parents: BTreeSet<NodeHash> = parents.into_iter().collect();
        DagNode {
            parents: parents.into_iter().collect(),
            payload,
        }
    }

    /// The canonical encoding: version, parent count, parents, payload length, payload.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 32 * self.parents.len() + 8 + self.payload.len());
        out.push(NODE_ENCODING_VERSION);
        out.extend_from_slice(&(self.parents.len() as u64).to_le_bytes());
        for parent in &self.parents {
            out.extend_from_slice(&parent.0);
        }
        out.extend_from_slice(&(self.payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// This node's name.
    pub fn hash(&self) -> NodeHash {
        NodeHash(*blake3::hash(&self.canonical_bytes()).as_bytes())
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.parents.len() > MAX_PARENTS {
            return Err(format!(
                "{} parents; the limit is {MAX_PARENTS}",
                self.parents.len()
            ));
        }
        if !self.parents.windows(2).all(|w| w[0] < w[1]) {
            return Err("parents are not sorted and unique".into());
        }
        Ok(())
    }
}

/// A Merkle DAG.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleDag {
    nodes: BTreeMap<NodeHash, DagNode>,
    /// Nodes that no other node names as a parent.
    heads: BTreeSet<NodeHash>,
}

impl MerkleDag {
    /// An empty DAG.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a node whose parents are the current heads; returns its hash.
    pub fn append(&mut self, payload: Vec<u8>) -> NodeHash {
        let node = DagNode::new(self.heads.iter().copied(), payload);
        let hash = node.hash();
        self.insert(hash, node)
            .expect("the parents are the current heads");
        hash
    }

    /// Inserts a node received as `claimed`: the hash must match its content and its parents
    /// must already be here. Inserting a known node is a no-op.
    pub fn insert(&mut self, claimed: NodeHash, node: DagNode) -> Result<(), CrdtError> {
        node.check_shape()
            .map_err(|reason| CrdtError::bad_format("DagNode", reason))?;
        let actual = node.hash();
        if actual != claimed {
            return Err(CrdtError::HashMismatch {
                claimed: claimed.to_hex(),
                actual: actual.to_hex(),
            });
        }
        if self.nodes.contains_key(&actual) {
            return Ok(());
        }
        let missing = node
            .parents
            .iter()
            .filter(|p| !self.nodes.contains_key(p))
            .count();
        if missing > 0 {
            return Err(CrdtError::MissingParents {
                node: actual.to_hex(),
                missing,
            });
        }
        for parent in &node.parents {
            self.heads.remove(parent);
        }
        self.heads.insert(actual);
        self.nodes.insert(actual, node);
        Ok(())
    }

    /// The node named `hash`.
    pub fn get(&self, hash: &NodeHash) -> Option<&DagNode> {
        self.nodes.get(hash)
    }

    /// Whether the DAG holds `hash`.
    pub fn contains(&self, hash: &NodeHash) -> bool {
        self.nodes.contains_key(hash)
    }

    /// The nodes with no children, in hash order.
    pub fn heads(&self) -> Vec<NodeHash> {
        self.heads.iter().copied().collect()
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the DAG is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node in a causal order (parents before children), ties broken by hash, so every
    /// replica with the same nodes gets the same order.
    pub fn topological_order(&self) -> Vec<NodeHash> {
        self.order_of(self.nodes.keys().copied().collect())
    }

    /// Orders a subset of the nodes causally (parents outside the subset are ignored).
    fn order_of(&self, subset: BTreeSet<NodeHash>) -> Vec<NodeHash> {
        let mut waiting: BTreeMap<NodeHash, usize> = BTreeMap::new();
        let mut children: BTreeMap<NodeHash, Vec<NodeHash>> = BTreeMap::new();
        for hash in &subset {
            let parents: Vec<_> = self.nodes[hash]
                .parents
                .iter()
                .filter(|p| subset.contains(p))
                .collect();
            waiting.insert(*hash, parents.len());
            for parent in parents {
                children.entry(*parent).or_default().push(*hash);
            }
        }
        let mut ready: BTreeSet<NodeHash> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(h, _)| *h)
            .collect();
        let mut order = Vec::with_capacity(subset.len());
        while let Some(hash) = ready.pop_first() {
            order.push(hash);
            for child in children.get(&hash).into_iter().flatten() {
                let count = waiting.get_mut(child).expect("a child is in the subset");
                *count -= 1;
                if *count == 0 {
                    ready.insert(*child);
                }
            }
        }
        order
    }

    /// The hashes of every node that is `hash` or one of its ancestors.
    fn ancestry(&self, starts: &[NodeHash]) -> BTreeSet<NodeHash> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<NodeHash> = starts
            .iter()
            .filter(|h| self.nodes.contains_key(h))
            .copied()
            .collect();
        while let Some(hash) = stack.pop() {
            if seen.insert(hash) {
                stack.extend(self.nodes[&hash].parents.iter().copied());
            }
        }
        seen
    }

    /// The nodes a peer whose heads are `remote_heads` lacks, in causal order, ready to insert.
    /// Heads unknown here are ignored (the peer has something this DAG has not seen).
    pub fn missing(&self, remote_heads: &[NodeHash]) -> Vec<(NodeHash, DagNode)> {
        let known = self.ancestry(remote_heads);
        let wanted: BTreeSet<NodeHash> = self
            .nodes
            .keys()
            .filter(|h| !known.contains(h))
            .copied()
            .collect();
        self.order_of(wanted)
            .into_iter()
            .map(|h| (h, self.nodes[&h].clone()))
            .collect()
    }
}

/// A batch of nodes to ship (what [`MerkleDag::missing`] returns), in causal order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagNodes(pub Vec<DagNode>);

impl MerkleDag {
    /// Inserts a batch in order, checking each hash (recomputed here) and parent; returns how
    /// many nodes were new. Stops at the first bad node (the ones before it stay inserted).
    pub fn insert_all(&mut self, nodes: &DagNodes) -> Result<usize, CrdtError> {
        let before = self.len();
        for node in &nodes.0 {
            self.insert(node.hash(), node.clone())?;
        }
        Ok(self.len() - before)
    }
}

impl_encode!(DagNodes, 0x0b, "DagNodes", |nodes| {
    nodes.0.iter().try_for_each(DagNode::check_shape)
});

impl Crdt for MerkleDag {
    fn merge(&mut self, other: &Self) {
        for hash in other.topological_order() {
            self.insert(hash, other.nodes[&hash].clone())
                .expect("nodes of a valid DAG, parents first");
        }
    }
}

/// The encoding: the nodes in causal order; decoding re-checks every hash and parent.
impl Encode for MerkleDag {
    const TAG: u8 = 0x07;
    const NAME: &'static str = "MerkleDag";

    fn to_bytes(&self) -> Vec<u8> {
        let nodes: Vec<&DagNode> = self
            .topological_order()
            .iter()
            .map(|h| &self.nodes[h])
            .collect();
        encoding::encode(Self::TAG, &nodes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, CrdtError> {
        let nodes: Vec<DagNode> = encoding::decode(Self::TAG, Self::NAME, bytes)?;
        let mut dag = MerkleDag::new();
        for node in nodes {
            let hash = node.hash();
            dag.insert(hash, node)?;
        }
        Ok(dag)
    }
}
