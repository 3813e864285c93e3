//! Hybrid recall on a small labelled set (tests/memory/labelled.json), with the real local
//! embedding model: meaning-only and keyword-only queries must both find their bead first.
//! `scripts/test.sh` fetches the model; set CHRYSALIS_MODEL_DIR to run this alone.

use chrysalis_embedding::LocalModel;
use chrysalis_memory::{
    BeadDraft, BeadEmbedding, Filter, HnswConfig, Identity, MemoryIndex, MemoryStore, Query,
    Ranking,
};

const MODEL: &str = "all-MiniLM-L6-v2";

#[test]
fn hybrid_recall_finds_the_labelled_bead_for_meaning_and_keyword_queries() {
    let dir = std::path::PathBuf::from(
        std::env::var("CHRYSALIS_MODEL_DIR").expect("CHRYSALIS_MODEL_DIR: run scripts/test.sh"),
    );
    let model = LocalModel::load(
        &std::fs::read(dir.join("model.onnx")).unwrap(),
        &std::fs::read(dir.join("tokenizer.json")).unwrap(),
    )
    .unwrap();
    let labelled: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/memory/labelled.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let texts: Vec<&str> = labelled["beads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let (vectors, _) = model.embed_batch(&texts).unwrap();

    let me = Identity::from_seed(&[1; 32]).unwrap();
    let mut store = MemoryStore::new(&me.public_key());
    let mut ids = Vec::new();
    for (text, vector) in texts.iter().zip(vectors) {
        let draft = BeadDraft {
            content: (*text).into(),
            kind: "note".into(),
            tags: Vec::new(),
            embedding: Some(BeadEmbedding {
                model: MODEL.into(),
                vector,
            }),
        };
        ids.push(store.remember(&me, draft, 1).unwrap().0.id);
    }
    let index = MemoryIndex::build(&store, HnswConfig::default(), Some((MODEL.into(), 384)));

    let filter = Filter::default();
    let mut misses = Vec::new();
    for q in labelled["queries"].as_array().unwrap() {
        let text = q["text"].as_str().unwrap();
        let want = ids[q["bead"].as_u64().unwrap() as usize];
        let (embedded, _) = model.embed_batch(&[text]).unwrap();
        let rank = |ranking| {
            let query = Query {
                text,
                embedding: Some((MODEL, &embedded[0][..])),
                k: 3,
                filter: &filter,
                ranking,
            };
            let hits = index.search(&query).unwrap();
            hits.iter().position(|h| h.id == want).map(|p| p + 1)
        };
        let hybrid = rank(Ranking::Hybrid);
        println!(
            "{:8} {text:45} hybrid {hybrid:?}, reciprocal rank {:?}, vector {:?}, keyword {:?}",
            q["kind"].as_str().unwrap(),
            rank(Ranking::ReciprocalRank),
            rank(Ranking::Vector),
            rank(Ranking::Keyword),
        );
        if hybrid != Some(1) {
            misses.push(text);
        }
    }
    assert!(misses.is_empty(), "hybrid recall missed: {misses:?}");
}
