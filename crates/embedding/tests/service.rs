//! The service's fallback, retry, batching and cache logic, with a scripted `Io` (the real
//! fetch path is tested in Chromium against a loopback server: tests/e2e/embedding.test.mjs).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use chrysalis_embedding::{
    EmbeddingError, EmbeddingService, HttpRequest, HttpResponse, Io, Provider, RemoteApi,
    RemoteConfig, RetryPolicy, ServiceConfig, TransportError,
};
use futures_executor::block_on;
use serde_json::{Value, json};

/// Answers requests from a script; an OpenAI-format success when the script is empty.
#[derive(Default)]
struct ScriptedIo {
    script: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
    requests: RefCell<Vec<HttpRequest>>,
    slept: RefCell<Vec<f64>>,
    clock: Cell<f64>,
    progress: RefCell<Vec<(usize, usize)>>,
    encoded: RefCell<Vec<(usize, usize)>>,
    pool_broken: Cell<bool>,
}

fn status(code: u16, retry_after: Option<&str>) -> Result<HttpResponse, TransportError> {
    Ok(HttpResponse {
        status: code,
        retry_after: retry_after.map(str::to_owned),
        body: "{}".into(),
    })
}

impl Io for ScriptedIo {
    async fn post_json(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let body: Value = serde_json::from_str(&request.body).unwrap();
        self.requests.borrow_mut().push(request);
        self.clock.set(self.clock.get() + 5.0);
        if let Some(answer) = self.script.borrow_mut().pop_front() {
            return answer;
        }
        let inputs = body["input"]
            .as_array()
            .or(body["texts"].as_array())
            .unwrap();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let len = text.as_str().unwrap().len() as f32;
                json!({ "index": i, "embedding": [len, 1.0] })
            })
            .collect();
        Ok(HttpResponse {
            status: 200,
            retry_after: None,
            body: json!({ "data": data, "embeddings": data.iter().map(|d| d["embedding"].clone()).collect::<Vec<_>>(),
                          "usage": { "prompt_tokens": inputs.len() } })
            .to_string(),
        })
    }
    async fn sleep(&self, ms: f64) {
        self.slept.borrow_mut().push(ms);
    }
    fn now_ms(&self) -> f64 {
        self.clock.get()
    }
    fn random(&self) -> f64 {
        0.5
    }
    fn aborted(&self) -> bool {
        false
    }
    fn progress(&self, done: usize, total: usize) {
        self.progress.borrow_mut().push((done, total));
    }
    /// A worker pool that embeds a text as `[its length, 0]`, or fails every chunk once
    /// `pool_broken` is set.
    async fn encode(
        &self,
        provider: usize,
        texts: &[&str],
    ) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        self.encoded.borrow_mut().push((provider, texts.len()));
        if self.pool_broken.get() {
            return Err(EmbeddingError::Model(
                "a worker could not load the model".into(),
            ));
        }
        Ok((
            texts.iter().map(|t| vec![t.len() as f32, 0.0]).collect(),
            texts.len() as u64,
        ))
    }
}

fn remote(api: RemoteApi) -> Provider {
    let mut config = RemoteConfig::new(api);
    config.dimensions = Some(2);
    config.model = "m".into();
    Provider::remote(config)
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| "x".repeat(i + 1)).collect()
}

#[test]
fn batches_are_split_kept_in_order_and_cached() {
    let mut openai = remote(RemoteApi::OpenAi);
    openai.batch_size = 3;
    let service = EmbeddingService::new(vec![openai], ServiceConfig::default()).unwrap();
    let io = ScriptedIo::default();
    let out = block_on(service.embed_batch(&io, &texts(7))).unwrap();
    assert_eq!(out.len(), 7);
    for (i, e) in out.iter().enumerate() {
        assert_eq!(e.vector, vec![(i + 1) as f32, 1.0]);
        assert_eq!((e.model.as_str(), e.dims()), ("m", 2));
    }
    assert_eq!(io.requests.borrow().len(), 3);
    assert_eq!(io.progress.borrow().last(), Some(&(7, 7)));
    // Again: all from the cache, no request.
    block_on(service.embed_batch(&io, &texts(7))).unwrap();
    assert_eq!(io.requests.borrow().len(), 3);
    let stats = &service.telemetry()[0];
    assert_eq!(
        (stats.calls, stats.texts, stats.cache_hits, stats.tokens),
        (3, 7, 7, 7)
    );
}

#[test]
fn retryable_errors_back_off_and_honour_retry_after() {
    let service =
        EmbeddingService::new(vec![remote(RemoteApi::OpenAi)], ServiceConfig::default()).unwrap();
    let io = ScriptedIo::default();
    io.script.borrow_mut().extend([
        status(429, Some("2")),
        status(503, None),
        Err(TransportError::Network("reset".into())),
    ]);
    block_on(service.embed_batch(&io, &texts(1))).unwrap();
    assert_eq!(*io.slept.borrow(), vec![2000.0, 250.0, 500.0]);
    let stats = &service.telemetry()[0];
    assert_eq!((stats.retryable_errors, stats.calls), (3, 1));
}

#[test]
fn fatal_errors_move_to_the_next_provider_and_exhaustion_reports_all() {
    let service = EmbeddingService::new(
        vec![remote(RemoteApi::OpenAi), remote(RemoteApi::Nomic)],
        ServiceConfig {
            retry: RetryPolicy {
                max_attempts: 2,
                ..RetryPolicy::default()
            },
            ..ServiceConfig::default()
        },
    )
    .unwrap();
    let io = ScriptedIo::default();
    io.script.borrow_mut().push_back(status(401, None));
    block_on(service.embed_batch(&io, &texts(2))).unwrap();
    let urls: Vec<String> = io.requests.borrow().iter().map(|r| r.url.clone()).collect();
    assert!(urls[0].ends_with("/v1/embeddings") && urls[1].ends_with("/v1/embedding/text"));
    assert_eq!(io.requests.borrow()[1].api_key, "nomic");
    let stats = service.telemetry();
    assert_eq!((stats[0].fatal_errors, stats[1].calls), (1, 1));

    let io = ScriptedIo::default();
    io.script
        .borrow_mut()
        .extend([status(500, None), status(500, None), status(400, None)]);
    let err = block_on(service.embed_batch(&io, &["new".to_owned()])).unwrap_err();
    assert_eq!(err.code(), "ALL_PROVIDERS_FAILED");
    assert!(
        err.to_string().contains("HTTP 500") && err.to_string().contains("HTTP 400"),
        "{err}"
    );
}

#[test]
fn cost_estimates_and_configuration_errors() {
    let mut openai = remote(RemoteApi::OpenAi);
    openai.price_per_million = 0.02;
    let service = EmbeddingService::new(vec![openai], ServiceConfig::default()).unwrap();
    let cost = service
        .estimate_cost(&["abcdefgh".to_owned(), "a".to_owned()])
        .unwrap();
    assert_eq!(cost[0].tokens, 3);
    assert!((cost[0].usd - 3.0 * 0.02 / 1e6).abs() < 1e-15);
    assert_eq!(
        EmbeddingService::new(vec![], ServiceConfig::default())
            .unwrap_err()
            .code(),
        "BAD_INPUT"
    );
    let twice = EmbeddingService::new(
        vec![remote(RemoteApi::OpenAi), remote(RemoteApi::OpenAi)],
        ServiceConfig::default(),
    );
    assert_eq!(twice.unwrap_err().code(), "BAD_INPUT");
    let mut unknown = RemoteConfig::new(RemoteApi::OpenAi);
    unknown.model = "some-new-model".into();
    let err = EmbeddingService::new(vec![Provider::remote(unknown)], ServiceConfig::default())
        .unwrap_err();
    assert!(err.to_string().contains("dimensions"));
}

#[test]
fn a_pooled_model_gets_even_chunks_in_order_and_falls_back_when_the_pool_fails() {
    let service = EmbeddingService::new(
        vec![Provider::workers("mini", 2, 2), remote(RemoteApi::OpenAi)],
        ServiceConfig::default(),
    )
    .unwrap();
    let io = ScriptedIo::default();
    let out = block_on(service.embed_batch(&io, &texts(20))).unwrap();
    for (i, e) in out.iter().enumerate() {
        assert_eq!(
            (e.vector.clone(), e.model.as_str()),
            (vec![(i + 1) as f32, 0.0], "mini")
        );
    }
    assert_eq!(*io.encoded.borrow(), [(0, 5); 4]);
    assert_eq!(io.progress.borrow().last(), Some(&(20, 20)));
    assert_eq!(service.telemetry()[0].tokens, 20);
    // A pool that cannot run fails fast and the batch moves to the next provider.
    io.pool_broken.set(true);
    let out = block_on(service.embed_batch(&io, &texts(30)[25..])).unwrap();
    assert_eq!(out[0].model, "m");
    assert_eq!(io.requests.borrow().len(), 1);
    assert_eq!(service.telemetry()[0].fatal_errors, 1);
}
