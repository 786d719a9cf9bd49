//! A sentence encoder: a tokenizer.json plus an ONNX graph run by tract, turning texts into
//! L2-normalised embeddings. Runs on pool threads only; one optimised plan is shared by all of them
//! and each call gets its own state.

use std::path::Path;
use std::sync::Arc;

use tokenizers::Tokenizer;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

/// What a graph input is fed with, by ONNX input name.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Feed {
    Ids,
    Mask,
    TypeIds,
}

/// The output either is the pooled sentence embedding [batch, dim] or token states
/// [batch, seq, dim], which are mean-pooled over the attention mask here.
#[derive(Clone, Copy, Debug, PartialEq)]
enum OutputKind {
    Pooled,
    TokenStates,
}

/// Texts are padded up to a multiple of this many tokens to share a length plan.
pub const LENGTH_BUCKET: usize = 8;

pub struct Encoder {
    /// One plan for any batch size and length.
    plan: Arc<TypedRunnableModel>,
    /// The decluttered graph with symbolic batch and length, from which length plans are built.
    typed: TypedModel,
    batch_sym: Symbol,
    seq_sym: Symbol,
    /// Plans for one text of a fixed (bucketed) length. tract picks faster matmul kernels when
    /// it knows the length (measured here: 8.7 vs 12.6 ms for 54 tokens), but each such plan
    /// holds its own packed copy of the weights (~44 MB for all-MiniLM-L6-v2), so their number is
    /// capped by `classify-length-plans`.
    length_plans: std::sync::Mutex<Vec<(usize, Arc<TypedRunnableModel>)>>,
    /// Length plans built so far: a run that built one took far longer than running costs.
    pub plans_built: std::sync::atomic::AtomicU64,
    tokenizer: Tokenizer,
    feeds: Vec<Feed>,
    output: OutputKind,
    pub dim: usize,
    /// xxh3 of the graph and tokenizer bytes: vectors are only comparable under one fingerprint.
    pub fingerprint: u64,
}

/// One tokenised text, already truncated.
pub struct Tokens {
    pub ids: Vec<i64>,
    pub type_ids: Vec<i64>,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Largest sequence the encoder is asked to run (BERT-style position tables hold 512).
pub const MAX_POSITIONS: usize = 512;

impl Encoder {
    /// Loads `dir/model.onnx` and `dir/tokenizer.json`. Slow (hundreds of ms): never on the main thread.
    pub fn load(dir: &Path) -> Result<Encoder, String> {
        let onnx_path = dir.join("model.onnx");
        let tok_path = dir.join("tokenizer.json");
        let onnx_bytes = std::fs::read(&onnx_path).map_err(|e| format!("cannot read {}: {e}", onnx_path.display()))?;
        let tok_bytes = std::fs::read(&tok_path).map_err(|e| format!("cannot read {}: {e}", tok_path.display()))?;
        let mut tokenizer =
            Tokenizer::from_bytes(&tok_bytes).map_err(|e| format!("{} is not a usable tokenizer: {e}", tok_path.display()))?;
        // Lengths stay dynamic: the pool pads each batch to its own longest text.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| format!("tokenizer: {e}"))?;

        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &onnx_bytes[..])
            .map_err(|e| format!("{} is not a usable ONNX graph: {e}", onnx_path.display()))?;
        let mut feeds = Vec::new();
        let batch = model.sym("B");
        let seq = model.sym("S");
        let input_count = model.inputs.len();
        for i in 0..input_count {
            let name = model.node(model.inputs[i].node).name.clone();
            let feed = match name.as_str() {
                "input_ids" => Feed::Ids,
                "attention_mask" => Feed::Mask,
                "token_type_ids" => Feed::TypeIds,
                other => return Err(format!("unexpected graph input '{other}' (expected input_ids, attention_mask, token_type_ids)")),
            };
            feeds.push(feed);
            model = model
                .with_input_fact(i, i64::fact([batch.to_dim(), seq.to_dim()]).into())
                .map_err(|e| format!("graph input '{name}': {e}"))?;
        }
        if !feeds.contains(&Feed::Ids) {
            return Err("the graph has no input_ids input".into());
        }
        if model.outputs.is_empty() {
            return Err("the graph has no output".into());
        }
        let typed = model.into_typed().and_then(|m| m.into_decluttered()).map_err(|e| format!("cannot type the graph: {e}"))?;
        let model = typed.clone().into_optimized().map_err(|e| format!("cannot optimise the graph: {e}"))?;
        let out_fact = model.output_fact(0).map_err(|e| format!("graph output: {e}"))?.clone();
        let (output, dim) = match out_fact.shape.dims() {
            [_, d] => (OutputKind::Pooled, d.to_usize().map_err(|_| "the output's last dimension is not fixed".to_string())?),
            [_, _, d] => (OutputKind::TokenStates, d.to_usize().map_err(|_| "the output's last dimension is not fixed".to_string())?),
            other => return Err(format!("output shape {other:?}: expected [batch, dim] or [batch, seq, dim]")),
        };
        if out_fact.datum_type != f32::datum_type() {
            return Err(format!("output type {:?}: expected float32", out_fact.datum_type));
        }
        let plan = model.into_runnable().map_err(|e| format!("cannot plan the graph: {e}"))?;
        let fingerprint = xxhash_rust::xxh3::xxh3_64(&onnx_bytes) ^ xxhash_rust::xxh3::xxh3_64(&tok_bytes).rotate_left(1);
        let encoder = Encoder {
            plan,
            typed,
            batch_sym: batch,
            seq_sym: seq,
            length_plans: std::sync::Mutex::new(Vec::new()),
            plans_built: std::sync::atomic::AtomicU64::new(0),
            tokenizer,
            feeds,
            output,
            dim,
            fingerprint,
        };
        // The first run allocates and warms up the plan; fail here rather than on a user's call.
        encoder.embed_tokens(&[encoder.tokenize("warm up", 16)?]).map_err(|e| format!("test run failed: {e}"))?;
        Ok(encoder)
    }

    /// Tokenises, keeping at most `max_tokens` tokens (the final special token survives truncation).
    pub fn tokenize(&self, text: &str, max_tokens: usize) -> Result<Tokens, String> {
        let max_tokens = max_tokens.clamp(2, MAX_POSITIONS);
        // Cutting first (at a sentence end) bounds the work for long articles.
        let text = super::lead::lead(text, max_tokens * super::lead::BYTES_PER_TOKEN);
        let enc = self.tokenizer.encode_fast(text, true).map_err(|e| format!("tokenizer: {e}"))?;
        let mut ids: Vec<i64> = enc.get_ids().iter().map(|&x| x as i64).collect();
        let mut type_ids: Vec<i64> = enc.get_type_ids().iter().map(|&x| x as i64).collect();
        if ids.len() > max_tokens {
            let ends_special = enc.get_special_tokens_mask().last() == Some(&1);
            let last = (*ids.last().unwrap_or(&0), *type_ids.last().unwrap_or(&0));
            ids.truncate(max_tokens);
            type_ids.truncate(max_tokens);
            if ends_special {
                ids[max_tokens - 1] = last.0;
                type_ids[max_tokens - 1] = last.1;
            }
        }
        if ids.is_empty() {
            return Err("the tokenizer produced no tokens".into());
        }
        Ok(Tokens { ids, type_ids })
    }

    /// Tokens the tokenizer knows (with added special tokens): the static table's row count.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Embeds one padded batch (callers group texts of similar length). Returns one unit vector each.
    pub fn embed_tokens(&self, batch: &[Tokens]) -> Result<Vec<Vec<f32>>, String> {
        let longest = batch.iter().map(Tokens::len).max().unwrap_or(1);
        self.run_plan(&self.plan, batch, longest)
    }

    /// Milliseconds one text of `max_tokens` tokens takes on this thread, run as the pool runs it
    /// (the mean of three runs).
    pub fn cost_of_one_text(&self, max_tokens: usize, max_plans: usize) -> Option<f64> {
        let text = "news ".repeat(max_tokens);
        let mut total = 0.0;
        for _ in 0..3 {
            let tokens = self.tokenize(&text, max_tokens).ok()?;
            let started = std::time::Instant::now();
            self.embed_many(vec![tokens], 1, max_plans).ok()?;
            total += started.elapsed().as_secs_f64() * 1000.0;
        }
        Some(total / 3.0)
    }

    /// Builds the length plans texts of up to `max_tokens` tokens will use, shortest first, while
    /// fewer than `max_plans` exist and `go_on` holds: right after loading, on the loader's
    /// thread, so the first texts of each length do not wait ~50 ms for their plan on a worker
    /// (and the memory they take is there from the start, not growing under the first load).
    pub fn prebuild_length_plans(&self, max_tokens: usize, max_plans: usize, go_on: impl Fn() -> bool) {
        let last = max_tokens.div_ceil(LENGTH_BUCKET).max(1) * LENGTH_BUCKET;
        for bucket in (LENGTH_BUCKET..=last).step_by(LENGTH_BUCKET).take(max_plans) {
            if !go_on() || self.length_plan(bucket, max_plans).is_none() {
                return;
            }
        }
    }

    /// The plan for one text of `bucket` tokens, built on first use while fewer than `max_plans`
    /// exist; None means: use the general plan.
    fn length_plan(&self, bucket: usize, max_plans: usize) -> Option<Arc<TypedRunnableModel>> {
        {
            let plans = self.length_plans.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, p)) = plans.iter().find(|(len, _)| *len == bucket) {
                return Some(p.clone());
            }
            if plans.len() >= max_plans {
                return None;
            }
        }
        let subs: std::collections::HashMap<Symbol, TDim> =
            [(self.batch_sym.clone(), TDim::from(1i64)), (self.seq_sym.clone(), TDim::from(bucket as i64))].into_iter().collect();
        let built = self.typed.set_symbols(&subs).and_then(|m| m.into_optimized()).and_then(|m| m.into_runnable());
        let plan = match built {
            Ok(p) => p,
            Err(e) => {
                crate::ffi::log_warning(&format!("agentic: no length plan for {bucket} tokens ({e}); using the general plan"));
                return None;
            }
        };
        let mut plans = self.length_plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = plans.iter().find(|(len, _)| *len == bucket) {
            return Some(p.clone());
        }
        if plans.len() >= max_plans {
            return None;
        }
        plans.push((bucket, plan.clone()));
        self.plans_built.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::MODEL_LENGTH_PLANS.set(plans.len() as i64);
        Some(plan)
    }

    fn run_plan(&self, plan: &Arc<TypedRunnableModel>, batch: &[Tokens], s: usize) -> Result<Vec<Vec<f32>>, String> {
        let b = batch.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let mut ids = vec![0i64; b * s];
        let mut mask = vec![0i64; b * s];
        let mut types = vec![0i64; b * s];
        for (r, t) in batch.iter().enumerate() {
            ids[r * s..r * s + t.len()].copy_from_slice(&t.ids);
            types[r * s..r * s + t.len()].copy_from_slice(&t.type_ids);
            mask[r * s..r * s + t.len()].fill(1);
        }
        let tensor = |v: &[i64]| Tensor::from_shape::<i64>(&[b, s], v).map(|t| t.into_tvalue()).map_err(|e| e.to_string());
        let mut inputs: TVec<TValue> = tvec![];
        for feed in &self.feeds {
            inputs.push(match feed {
                Feed::Ids => tensor(&ids)?,
                Feed::Mask => tensor(&mask)?,
                Feed::TypeIds => tensor(&types)?,
            });
        }
        let mut state = plan.spawn().map_err(|e| format!("inference: {e}"))?;
        let outputs = state
            .run_plan_with_eval(inputs, |session, op_state, node, input| {
                if let Some(every) = crate::configs::classify_yield_every() {
                    crate::ffi::yield_core_every(every);
                }
                tract_onnx::tract_core::plan::eval(session, op_state, node, input)
            })
            .map_err(|e| format!("inference: {e}"))?;
        let out = outputs[0].to_plain_array_view::<f32>().map_err(|e| e.to_string())?;
        let flat = out.as_slice().ok_or("non-contiguous output")?;
        let d = self.dim;
        let mut vectors = Vec::with_capacity(b);
        for (r, t) in batch.iter().enumerate() {
            let mut v = match self.output {
                OutputKind::Pooled => flat.get(r * d..(r + 1) * d).ok_or("output smaller than the batch")?.to_vec(),
                OutputKind::TokenStates => {
                    let mut acc = vec![0f32; d];
                    for tok in 0..t.len() {
                        let row = flat.get((r * s + tok) * d..(r * s + tok + 1) * d).ok_or("output smaller than the batch")?;
                        acc.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                    }
                    acc
                }
            };
            normalize(&mut v);
            vectors.push(v);
        }
        Ok(vectors)
    }

    /// Embeds texts of any lengths: sorted by length and run in batches of at most `batch_max`, so
    /// little compute goes to padding. Results come back in input order.
    pub fn embed_texts(&self, texts: &[&str], max_tokens: usize, batch_max: usize, max_plans: usize) -> Result<Vec<Vec<f32>>, String> {
        let tokens: Vec<Tokens> = texts.iter().map(|t| self.tokenize(t, max_tokens)).collect::<Result<_, _>>()?;
        self.embed_many(tokens, batch_max, max_plans)
    }

    /// Texts with a length plan run one by one on it (padded to their bucket); the rest share
    /// padded batches on the general plan.
    pub fn embed_many(&self, tokens: Vec<Tokens>, batch_max: usize, max_plans: usize) -> Result<Vec<Vec<f32>>, String> {
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); tokens.len()];
        self.embed_each(tokens, batch_max, max_plans, |i, v| out[i] = v)?;
        Ok(out)
    }

    /// Like `embed_many`, handing each vector to `done(index, vector)` as soon as it is computed,
    /// so a text does not wait for the texts taken with it.
    pub fn embed_each(
        &self,
        tokens: Vec<Tokens>,
        batch_max: usize,
        max_plans: usize,
        mut done: impl FnMut(usize, Vec<f32>),
    ) -> Result<(), String> {
        let mut rest: Vec<usize> = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let bucket = t.len().div_ceil(LENGTH_BUCKET) * LENGTH_BUCKET;
            match (max_plans > 0).then(|| self.length_plan(bucket, max_plans)).flatten() {
                Some(plan) => {
                    let v = self.run_plan(&plan, std::slice::from_ref(t), bucket)?;
                    done(i, v.into_iter().next().ok_or("no output")?);
                }
                None => rest.push(i),
            }
        }
        rest.sort_by_key(|&i| tokens[i].len());
        let mut slots: Vec<Option<Tokens>> = tokens.into_iter().map(Some).collect();
        for group in rest.chunks(batch_max.max(1)) {
            let batch: Vec<Tokens> = group.iter().filter_map(|&i| slots[i].take()).collect();
            for (&i, v) in group.iter().zip(self.embed_tokens(&batch)?) {
                done(i, v);
            }
        }
        Ok(())
    }
}

pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
