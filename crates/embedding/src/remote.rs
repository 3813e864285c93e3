//! The OpenAI and Nomic embedding APIs: request bodies, response parsing, error bodies.

use chrysalis_crypto::redact_api_keys;
use serde::Deserialize;
use serde_json::json;

use crate::EmbeddingError;

/// Which remote API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteApi {
    /// `POST /v1/embeddings` (OpenAI and compatible servers).
    OpenAi,
    /// `POST /v1/embedding/text` (Nomic Atlas).
    Nomic,
}

impl RemoteApi {
    /// `"openai"` or `"nomic"`: also the name of its API key in the `SecurityContext`.
    pub fn name(self) -> &'static str {
        match self {
            RemoteApi::OpenAi => "openai",
            RemoteApi::Nomic => "nomic",
        }
    }

    /// The public endpoint's origin.
    pub fn default_base_url(self) -> &'static str {
        match self {
            RemoteApi::OpenAi => "https://api.openai.com",
            RemoteApi::Nomic => "https://api-atlas.nomic.ai",
        }
    }

    /// The default model.
    pub fn default_model(self) -> &'static str {
        match self {
            RemoteApi::OpenAi => "text-embedding-3-small",
            RemoteApi::Nomic => "nomic-embed-text-v1.5",
        }
    }

    fn path(self) -> &'static str {
        match self {
            RemoteApi::OpenAi => "/v1/embeddings",
            RemoteApi::Nomic => "/v1/embedding/text",
        }
    }

    /// Most inputs the API takes in one request.
    pub fn max_batch(self) -> usize {
        match self {
            RemoteApi::OpenAi => 2048,
            RemoteApi::Nomic => 512,
        }
    }
}

/// Native dimensions of the models we know (`None` for others: then `dimensions` is required).
pub fn native_dims(model: &str) -> Option<usize> {
    match model {
        "text-embedding-3-small" | "text-embedding-ada-002" => Some(1536),
        "text-embedding-3-large" => Some(3072),
        "nomic-embed-text-v1.5" | "nomic-embed-text-v1" => Some(768),
        "all-MiniLM-L6-v2" => Some(384),
        _ => None,
    }
}

/// List price in US dollars per million input tokens of the models we know (override per provider).
pub fn list_price_per_million(model: &str) -> Option<f64> {
    match model {
        "text-embedding-3-small" => Some(0.02),
        "text-embedding-3-large" => Some(0.13),
        "text-embedding-ada-002" => Some(0.10),
        "nomic-embed-text-v1.5" | "nomic-embed-text-v1" => Some(0.10),
        _ => None,
    }
}

/// One remote provider's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// The API it speaks.
    pub api: RemoteApi,
    /// The model id sent to the API.
    pub model: String,
    /// Requested output dimensions (`dimensions` for OpenAI v3 models, `dimensionality` for Nomic).
    pub dimensions: Option<usize>,
    /// Origin (and optional path prefix) of the API, without a trailing slash.
    pub base_url: String,
    /// Nomic's `task_type` (`search_document`, `search_query`, `classification`, `clustering`).
    pub task_type: Option<String>,
}

impl RemoteConfig {
    /// A provider with the API's defaults.
    pub fn new(api: RemoteApi) -> Self {
        RemoteConfig {
            api,
            model: api.default_model().to_owned(),
            dimensions: None,
            base_url: api.default_base_url().to_owned(),
            task_type: (api == RemoteApi::Nomic).then(|| "search_document".to_owned()),
        }
    }

    /// The dimensions its vectors will have.
    pub fn dims(&self) -> Result<usize, EmbeddingError> {
        self.dimensions
            .or_else(|| native_dims(&self.model))
            .ok_or_else(|| {
                EmbeddingError::BadInput(format!(
                    "model {:?} is not known: give its `dimensions`",
                    self.model
                ))
            })
    }

    /// The full URL of the embeddings endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}{}", self.base_url.trim_end_matches('/'), self.api.path())
    }

    /// The JSON body that asks for `texts`.
    pub fn request_body(&self, texts: &[&str]) -> String {
        let body = match self.api {
            RemoteApi::OpenAi => {
                let mut body =
                    json!({ "model": self.model, "input": texts, "encoding_format": "float" });
                if let Some(d) = self.dimensions {
                    body["dimensions"] = json!(d);
                }
                body
            }
            RemoteApi::Nomic => {
                let mut body = json!({ "model": self.model, "texts": texts });
                if let Some(task) = &self.task_type {
                    body["task_type"] = json!(task);
                }
                if let Some(d) = self.dimensions {
                    body["dimensionality"] = json!(d);
                }
                body
            }
        };
        body.to_string()
    }

    /// Parses a 2xx answer for `expected` texts: the vectors in input order and the tokens billed.
    pub fn parse_response(
        &self,
        body: &str,
        expected: usize,
    ) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        let malformed = |message: String| EmbeddingError::MalformedResponse {
            provider: self.api.name().to_owned(),
            message,
        };
        let (vectors, tokens) = match self.api {
            RemoteApi::OpenAi => {
                let parsed: OpenAiResponse =
                    serde_json::from_str(body).map_err(|e| malformed(e.to_string()))?;
                let mut slots: Vec<Option<Vec<f32>>> = vec![None; expected];
                for item in parsed.data {
                    let slot = slots
                        .get_mut(item.index)
                        .ok_or_else(|| malformed(format!("index {} out of range", item.index)))?;
                    if slot.replace(item.embedding).is_some() {
                        return Err(malformed(format!("index {} twice", item.index)));
                    }
                }
                let vectors = slots
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| v.ok_or_else(|| malformed(format!("no embedding for input {i}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                (vectors, parsed.usage.map_or(0, |u| u.prompt_tokens))
            }
            RemoteApi::Nomic => {
                let parsed: NomicResponse =
                    serde_json::from_str(body).map_err(|e| malformed(e.to_string()))?;
                (
                    parsed.embeddings,
                    parsed.usage.map_or(0, |u| u.prompt_tokens),
                )
            }
        };
        if vectors.len() != expected {
            return Err(malformed(format!(
                "{} embeddings for {expected} inputs",
                vectors.len()
            )));
        }
        let dims = self.dims()?;
        if let Some(v) = vectors.iter().find(|v| v.len() != dims) {
            return Err(malformed(format!(
                "a vector of {} dimensions, expected {dims}",
                v.len()
            )));
        }
        Ok((vectors, tokens))
    }

    /// The error for a non-2xx answer, with the provider's own message when its body has one.
    pub fn http_error(&self, status: u16, body: &str) -> EmbeddingError {
        let message = serde_json::from_str::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.error.map(|e| e.message).or(b.detail))
            .unwrap_or_default();
        EmbeddingError::Http {
            provider: self.api.name().to_owned(),
            status,
            message: provider_message(&message),
        }
    }
}

/// The longest provider error message kept in an [`EmbeddingError::Http`], in characters.
const MAX_PROVIDER_MESSAGE_CHARS: usize = 300;

/// A provider's error message as shown to the page: every API key in it redacted, then cut to
/// [`MAX_PROVIDER_MESSAGE_CHARS`] characters. Redaction runs on the whole message first: a cut
/// through a key would leave a fragment too short to be recognised as a key, shown as it is.
/// The cut falls on a character boundary, and can only shorten a redacted form (`sk-...abcd`).
fn provider_message(message: &str) -> String {
    redact_api_keys(message)
        .chars()
        .take(MAX_PROVIDER_MESSAGE_CHARS)
        .collect()
}

#[derive(Deserialize)]
struct OpenAiResponse {
    data: Vec<OpenAiItem>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct OpenAiItem {
    index: usize,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct NomicResponse {
    embeddings: Vec<Vec<f32>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorMessage>,
    detail: Option<String>,
}

#[derive(Deserialize)]
struct ErrorMessage {
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_body_and_out_of_order_answer() {
        let mut cfg = RemoteConfig::new(RemoteApi::OpenAi);
        cfg.dimensions = Some(2);
        let body: serde_json::Value = serde_json::from_str(&cfg.request_body(&["a", "b"])).unwrap();
        assert_eq!(body["input"], json!(["a", "b"]));
        assert_eq!(body["dimensions"], json!(2));
        assert_eq!(cfg.endpoint(), "https://api.openai.com/v1/embeddings");
        let answer = r#"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[0,1]},
            {"object":"embedding","index":0,"embedding":[1,0]}],"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        let (vectors, tokens) = cfg.parse_response(answer, 2).unwrap();
        assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert_eq!(tokens, 7);
        assert_eq!(
            cfg.parse_response(answer, 3).unwrap_err().code(),
            "MALFORMED_RESPONSE"
        );
        assert_eq!(
            cfg.parse_response("{\"data\":", 2).unwrap_err().code(),
            "MALFORMED_RESPONSE"
        );
    }

    #[test]
    fn nomic_body_dimension_check_and_error_messages() {
        let cfg = RemoteConfig::new(RemoteApi::Nomic);
        let body: serde_json::Value = serde_json::from_str(&cfg.request_body(&["x"])).unwrap();
        assert_eq!(body["task_type"], json!("search_document"));
        assert_eq!(body["texts"], json!(["x"]));
        let short = r#"{"embeddings":[[1,2,3]],"usage":{"prompt_tokens":1}}"#;
        assert_eq!(
            cfg.parse_response(short, 1).unwrap_err().code(),
            "MALFORMED_RESPONSE"
        );
        let err = cfg.http_error(422, r#"{"detail":"bad task"}"#);
        assert_eq!(err.to_string(), "nomic: HTTP 422: bad task");
        let err = RemoteConfig::new(RemoteApi::OpenAi).http_error(
            401,
            r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error"}}"#,
        );
        assert_eq!(err.code(), "PROVIDER_AUTH");
        assert!(err.to_string().contains("Incorrect API key"));
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
        let echoed = format!(r#"{{"error":{{"message":"Incorrect API key provided: {key}."}}}}"#);
        let err = RemoteConfig::new(RemoteApi::OpenAi).http_error(401, &echoed);
        assert!(!err.to_string().contains(key) && err.to_string().contains("sk-proj-...WXYZ"));
    }

    /// A key anywhere across the 300-character cut (and with multi-byte characters before it)
    /// shows only as its redacted form or a prefix of that form: never a character of the key
    /// body besides its last four.
    #[test]
    fn a_key_across_the_cut_is_redacted_before_the_cut() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
        let cfg = RemoteConfig::new(RemoteApi::OpenAi);
        for filler in ["x", "é"] {
            for start in MAX_PROVIDER_MESSAGE_CHARS - key.len() - 2..=MAX_PROVIDER_MESSAGE_CHARS {
                let text = format!("{} {key} tail", filler.repeat(start - 1));
                let body = json!({ "error": { "message": text } }).to_string();
                let EmbeddingError::Http { message, .. } = cfg.http_error(401, &body) else {
                    panic!("an HTTP error");
                };
                assert!(message.chars().count() <= MAX_PROVIDER_MESSAGE_CHARS);
                assert!(
                    !message.contains("sk-proj-a"),
                    "a key starting at {start} leaks: {message:?}"
                );
                let shown = &message[message.rfind(' ').map_or(0, |i| i + 1)..];
                assert!(
                    "sk-proj-...WXYZ".starts_with(shown) || "tail".starts_with(shown),
                    "{start}: {shown:?}"
                );
            }
        }
    }
}
