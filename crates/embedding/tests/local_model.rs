//! The local model against onnxruntime's reference vectors (tests/embedding/reference.py).
//! `scripts/test.sh` fetches the model and writes the reference; set CHRYSALIS_MODEL_DIR and
//! CHRYSALIS_EMBEDDING_REFERENCE to run this alone.
#![cfg(feature = "local")]

use std::{path::PathBuf, time::Instant};

use chrysalis_embedding::{LocalModel, cosine_similarity, fuse_gelu};
use tract_onnx::prelude::Framework;

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which fetches the model and the reference")
    }))
}

fn load() -> (LocalModel, serde_json::Value) {
    load_with(chrysalis_embedding::INTEGER_PRODUCTS)
}

fn load_with(integer_products: bool) -> (LocalModel, serde_json::Value) {
    let dir = env_path("CHRYSALIS_MODEL_DIR");
    let model = std::fs::read(dir.join("model.onnx")).expect("model.onnx");
    let tokenizer = std::fs::read(dir.join("tokenizer.json")).expect("tokenizer.json");
    let started = Instant::now();
    let model =
        LocalModel::load_with(&model, &tokenizer, integer_products).expect("the model loads");
    println!("model loaded in {:?}", started.elapsed());
    let reference = std::fs::read_to_string(env_path("CHRYSALIS_EMBEDDING_REFERENCE")).unwrap();
    (model, serde_json::from_str(&reference).unwrap())
}

#[test]
fn matches_onnxruntime_on_every_reference_text() {
    matches_onnxruntime(false);
}

/// The integer products the wasm module runs (here through their portable loop).
#[test]
fn matches_onnxruntime_with_integer_products() {
    matches_onnxruntime(true);
}

fn matches_onnxruntime(integer_products: bool) {
    let (model, reference) = load_with(integer_products);
    assert_eq!(model.dims(), 384);
    let cases = reference["embeddings"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let texts: Vec<&str> = cases.iter().map(|c| c["text"].as_str().unwrap()).collect();
    let started = Instant::now();
    let (vectors, tokens) = model.embed_batch(&texts).unwrap();
    println!(
        "{} texts ({tokens} tokens) in one call: {:?}",
        texts.len(),
        started.elapsed()
    );
    let mut worst = 1f32;
    for ((case, vector), text) in cases.iter().zip(&vectors).zip(&texts) {
        let expected: Vec<f32> = serde_json::from_value(case["vector"].clone()).unwrap();
        let cosine = cosine_similarity(vector, &expected).unwrap();
        worst = worst.min(cosine);
        assert!(cosine >= 0.9999, "cosine {cosine} for {text:?}");
        assert_eq!(
            model.count_tokens(text).unwrap() as u64,
            case["tokens"].as_u64().unwrap()
        );
    }
    println!(
        "worst cosine against onnxruntime over {} texts: {worst:.6}",
        texts.len()
    );
    // A run does not depend on the runs before it (the plan's buffers are reused).
    let (single, _) = model.embed_batch(&texts[..1]).unwrap();
    assert_eq!(single[0], vectors[0]);
}

#[test]
fn every_gelu_of_the_model_is_fused() {
    let bytes = std::fs::read(env_path("CHRYSALIS_MODEL_DIR").join("model.onnx")).unwrap();
    let mut proto = tract_onnx::onnx()
        .proto_model_for_read(&mut std::io::Cursor::new(bytes))
        .unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let count = |graph: &tract_onnx::pb::GraphProto, op: &str| {
        graph.node.iter().filter(|n| n.op_type == op).count()
    };
    assert_eq!(count(graph, "Erf"), 6);
    let nodes = graph.node.len();
    fuse_gelu(graph);
    assert_eq!((count(graph, "Gelu"), count(graph, "Erf")), (6, 0));
    assert_eq!(graph.node.len(), nodes - 6 * 4);
}

#[test]
fn short_sentence_latency() {
    let (model, _) = load();
    let text = ["The agent remembered that the user prefers dark mode."];
    model.embed_batch(&text).unwrap();
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        model.embed_batch(&text).unwrap();
    }
    println!(
        "short sentence: {:?} per embedding (native)",
        started.elapsed() / runs
    );
    let started = Instant::now();
    for _ in 0..runs {
        model.count_tokens(text[0]).unwrap();
    }
    println!("of which tokenizing: {:?}", started.elapsed() / runs);
}

#[test]
fn broken_inputs_are_typed_errors() {
    let (model, _) = load();
    drop(model);
    let err = LocalModel::load(b"not an onnx file", b"{}").unwrap_err();
    assert_eq!(err.code(), "TOKENIZER_ERROR");
    let tokenizer = std::fs::read(env_path("CHRYSALIS_MODEL_DIR").join("tokenizer.json")).unwrap();
    let err = LocalModel::load(b"\x08\x07garbage", &tokenizer).unwrap_err();
    assert_eq!(err.code(), "MODEL_ERROR");
}
