"""Reference embeddings for tests/embedding/texts.json, computed with onnxruntime (CPU) on the
unmodified model file and the HF `tokenizers` Python package: the yardstick the in-page model
must match (cosine >= 0.9999 per text).

Usage: python reference.py MODEL_DIR OUT_JSON
"""
import json
import pathlib
import sys

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

MAX_TOKENS = 256


def main() -> None:
    model_dir, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    texts = json.loads((pathlib.Path(__file__).parent / "texts.json").read_text("utf-8"))
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    session = onnxruntime.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    vectors = []
    for text in texts:  # one text per run: no padding at all in the reference
        enc = tokenizer.encode(text)
        feed = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
        }
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.array([enc.type_ids], dtype=np.int64)
        hidden = session.run(None, feed)[0][0]
        mask = np.array(enc.attention_mask, dtype=np.float32)[:, None]
        pooled = (hidden * mask).sum(axis=0) / max(mask.sum(), 1.0)
        pooled /= np.linalg.norm(pooled) or 1.0
        vectors.append({"text": text, "tokens": len(enc.ids), "vector": [float(x) for x in pooled]})
    out.write_text(json.dumps({"model": "all-MiniLM-L6-v2", "onnxruntime": onnxruntime.__version__, "embeddings": vectors}))
    print(f"{len(vectors)} reference embeddings -> {out}")


if __name__ == "__main__":
    main()
