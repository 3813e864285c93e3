#![no_main]
//! Decodes arbitrary bytes as a DAG node batch and inserts it into a small DAG: typed errors only.
use chrysalis_crdt::{DagNodes, Encode, MerkleDag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(nodes) = DagNodes::from_bytes(data) {
        assert_eq!(DagNodes::from_bytes(&nodes.to_bytes()).unwrap(), nodes);
        let mut dag = MerkleDag::new();
        dag.append(b"root".to_vec());
        let _ = dag.insert_all(&nodes);
    }
});
