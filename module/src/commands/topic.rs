//! Topics as data. AGENT.TOPIC.SET / ADDEXAMPLES / DEL / GET / LIST / RESET edit and read the
//! catalog under `agentic:topics`; AGENT.LOADTOPICS restores an encoded catalog (replication and
//! AOF rewrite). Every change replicates as one fully specified AGENT.LOADTOPICS.

use std::sync::Arc;

use valkey_module::{Context, NotifyEvent, ValkeyError, ValkeyResult, ValkeyString, ValkeyValue};
use valkey_module_macros::command;

use crate::classify::catalog::{self, Catalog, CATALOG_KEY, MAX_DESCRIPTION_BYTES, MAX_EXAMPLE_BYTES};
use crate::classify::pool;
use crate::ffi::{self, CATALOG_TYPE};
use crate::{metrics, validate};

/// The catalog in force: the stored one, or the defaults while none is stored. On a cluster node
/// that does not serve the catalog's slot: the copy received from the catalog's primary.
pub fn current_catalog(ctx: &Context) -> Result<Arc<Catalog>, ValkeyError> {
    if crate::cluster::enabled() && !crate::catalog_sync::serves_catalog(ctx) {
        return crate::catalog_sync::copy()
            .ok_or(ValkeyError::Str("TRYAGAIN the topic catalog has not arrived from the node serving agentic:topics yet"));
    }
    let name = ValkeyString::create(None, CATALOG_KEY);
    let key = ctx.open_key(&name);
    match key.get_value::<Arc<Catalog>>(&CATALOG_TYPE) {
        Ok(Some(c)) => Ok(c.clone()),
        Ok(None) => Ok(Catalog::defaults()),
        Err(_) => Err(ValkeyError::String(format!(
            "ERR {CATALOG_KEY} holds a value that is not a topic catalog; delete it or use AGENT.TOPIC.RESET"
        ))),
    }
}

/// A topic change: written, then replicated as the fully specified new catalog.
fn store(ctx: &Context, c: Catalog) -> ValkeyResult<()> {
    let blob = catalog::encode(&c);
    put(ctx, c)?;
    ctx.replicate("AGENT.LOADTOPICS", &[CATALOG_KEY.as_bytes(), blob.as_slice()][..]);
    crate::catalog_sync::changed();
    Ok(())
}

/// Replaces the catalog value, tells watchers and keyspace listeners, and prepares its vectors.
fn put(ctx: &Context, c: Catalog) -> ValkeyResult<()> {
    let name = ValkeyString::create(None, CATALOG_KEY);
    let arc = Arc::new(c);
    ctx.open_key_writable(&name).set_value(&CATALOG_TYPE, arc.clone())?;
    ffi::signal_modified(ctx, name.inner);
    ctx.notify_keyspace_event(NotifyEvent::MODULE, "agent.topics", &name);
    metrics::TOPIC_WRITES.incr();
    pool::prepare(arc);
    Ok(())
}

/// The catalog key is implicit in these commands, so no key spec routes them: on a cluster node
/// that does not serve its slot they answer the MOVED the server would give for the key itself
/// (`valkey-cli -c` follows it; other cluster clients send them to the node of `agentic:topics`).
fn on_catalog_node(ctx: &Context, args: Vec<ValkeyString>, handler: fn(&Context, Vec<ValkeyString>) -> ValkeyResult) -> ValkeyResult {
    crate::cluster::serve_here(ctx, CATALOG_KEY.as_bytes())?;
    super::run(ctx, args, handler)
}

fn slug(arg: &ValkeyString) -> Result<String, ValkeyError> {
    Ok(String::from_utf8_lossy(validate::topic(arg)?).into_owned())
}

fn text(arg: &ValkeyString, what: &str, max: usize) -> Result<String, ValkeyError> {
    catalog::check_text(arg.as_slice(), what, max).map_err(|e| validate::err(format!("ERR {e}")))
}

fn examples(args: &[ValkeyString]) -> Result<Vec<String>, ValkeyError> {
    args.iter().map(|a| text(a, "example", MAX_EXAMPLE_BYTES)).collect()
}

#[command({
    name: "agent.topic.set",
    flags: [Write, DenyOOM],
    arity: -3,
    summary: "Defines or redefines a topic by slug with a natural-language description, optionally replacing its example texts",
    complexity: "O(T + E) for T topics and E examples",
    since: "0.1.0",
    key_spec: []
})]
fn agent_topic_set(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    on_catalog_node(ctx, args, topic_set)
}

fn topic_set(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let slug = slug(&args[1])?;
    let description = text(&args[2], "description", MAX_DESCRIPTION_BYTES)?;
    let examples = match args.get(3) {
        None => None,
        Some(kw) if validate::keyword(kw) == "EXAMPLES" => Some(examples(&args[4..])?),
        Some(other) => {
            return Err(validate::err(format!(
                "ERR unexpected argument '{}': expected EXAMPLES text ...",
                validate::printable(other.as_slice())
            )))
        }
    };
    let next = current_catalog(ctx)?.with_topic(&slug, &description, examples).map_err(|e| validate::err(format!("ERR {e}")))?;
    store(ctx, next)?;
    Ok(ValkeyValue::SimpleStringStatic("OK"))
}

#[command({
    name: "agent.topic.addexamples",
    flags: [Write, DenyOOM],
    arity: -3,
    summary: "Appends example texts to a topic (few-shot classification)",
    complexity: "O(T + E) for T topics and E examples",
    since: "0.1.0",
    key_spec: []
})]
fn agent_topic_addexamples(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    on_catalog_node(ctx, args, topic_addexamples)
}

fn topic_addexamples(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let slug = slug(&args[1])?;
    let new = examples(&args[2..])?;
    let next = current_catalog(ctx)?.with_examples(&slug, new).map_err(|e| validate::err(format!("ERR {e}")))?;
    let count = next.get(&slug).map_or(0, |t| t.examples.len());
    store(ctx, next)?;
    Ok(ValkeyValue::Integer(count as i64))
}

#[command({
    name: "agent.topic.del",
    flags: [Write],
    arity: -2,
    summary: "Removes topics; returns how many existed",
    complexity: "O(T) for T topics",
    since: "0.1.0",
    key_spec: []
})]
fn agent_topic_del(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    on_catalog_node(ctx, args, topic_del)
}

fn topic_del(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let slugs: Vec<String> = args[1..].iter().map(slug).collect::<Result<_, _>>()?;
    let current = current_catalog(ctx)?;
    let before = current.topics.len();
    match current.without(&slugs) {
        None => Ok(ValkeyValue::Integer(0)),
        Some(next) => {
            let removed = before - next.topics.len();
            store(ctx, next)?;
            Ok(ValkeyValue::Integer(removed as i64))
        }
    }
}

#[command({
    name: "agent.topic.reset",
    flags: [Write],
    arity: 1,
    summary: "Deletes every topic definition: the built-in default topics apply again",
    complexity: "O(1)",
    since: "0.1.0",
    key_spec: []
})]
fn agent_topic_reset(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    on_catalog_node(ctx, args, topic_reset)
}

fn topic_reset(ctx: &Context, _args: Vec<ValkeyString>) -> ValkeyResult {
    let name = ValkeyString::create(None, CATALOG_KEY);
    let key = ctx.open_key_writable(&name);
    if key.is_empty() {
        return Ok(ValkeyValue::Integer(0));
    }
    key.delete()?;
    drop(key);
    ctx.notify_keyspace_event(NotifyEvent::GENERIC, "del", &name);
    ctx.replicate("DEL", &[CATALOG_KEY.as_bytes()][..]);
    metrics::TOPIC_WRITES.incr();
    pool::prepare(Catalog::defaults());
    Ok(ValkeyValue::Integer(1))
}

#[command({
    name: "agent.topic.get",
    flags: [ReadOnly, Fast],
    arity: 2,
    summary: "Returns a topic's description and example texts",
    complexity: "O(log T + E) for T topics and E examples",
    since: "0.1.0",
    key_spec: []
})]
fn agent_topic_get(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    on_catalog_node(ctx, args, topic_get)
}

fn topic_get(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    let slug = slug(&args[1])?;
    let c = current_catalog(ctx)?;
    let t = c.get(&slug).ok_or_else(|| validate::err(format!("ERR no topic '{slug}'")))?;
    Ok(ValkeyValue::Array(vec![
        ValkeyValue::BulkString("slug".into()),
        ValkeyValue::BulkString(t.slug.clone()),
        ValkeyValue::BulkString("description".into()),
        ValkeyValue::BulkString(t.description.clone()),
        ValkeyValue::BulkString("examples".into()),
        ValkeyValue::Array(t.examples.iter().map(|e| ValkeyValue::BulkString(e.clone())).collect()),
    ]))
}

#[command({
    name: "agent.topic.list",
    flags: [ReadOnly],
    arity: 1,
    summary: "Lists the topics: slug, description, number of examples, whether defaults apply and whether vectors are ready",
    complexity: "O(T) for T topics",
    since: "0.1.0",
    key_spec: []
})]
fn agent_topic_list(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    on_catalog_node(ctx, args, topic_list)
}

fn topic_list(ctx: &Context, _args: Vec<ValkeyString>) -> ValkeyResult {
    let c = current_catalog(ctx)?;
    let is_default = Arc::ptr_eq(&c, &Catalog::defaults());
    let ready = crate::classify::topic_vectors::is_prepared(&c);
    let b = |s: &str| ValkeyValue::BulkString(s.to_string());
    Ok(ValkeyValue::Array(
        c.topics
            .iter()
            .map(|t| {
                ValkeyValue::Array(vec![
                    b("slug"),
                    b(&t.slug),
                    b("description"),
                    b(&t.description),
                    b("examples"),
                    ValkeyValue::Integer(t.examples.len() as i64),
                    b("default"),
                    ValkeyValue::Integer(is_default as i64),
                    b("ready"),
                    ValkeyValue::Integer(ready as i64),
                ])
            })
            .collect(),
    ))
}

#[command({
    name: "agent.loadtopics",
    flags: [Write, DenyOOM],
    arity: 3,
    summary: "Replaces the topic catalog with an encoded one (written by replication and AOF rewrite)",
    complexity: "O(S) for an encoding of S bytes",
    since: "0.1.0",
    key_spec: [{ notes: "catalog key", flags: [Overwrite, Update], begin_search: Index({ index: 1 }), find_keys: Range({ last_key: 0, steps: 1, limit: 0 }) }]
})]
fn agent_loadtopics(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    super::run(ctx, args, loadtopics)
}

fn loadtopics(ctx: &Context, args: Vec<ValkeyString>) -> ValkeyResult {
    if args[1].as_slice() != CATALOG_KEY.as_bytes() {
        return Err(ValkeyError::String(format!("ERR the topic catalog lives under {CATALOG_KEY}")));
    }
    let c = catalog::decode(args[2].as_slice()).map_err(|e| {
        metrics::LOAD_ERRORS.incr();
        validate::err(format!("ERR invalid topic catalog encoding: {e}"))
    })?;
    put(ctx, c)?;
    ctx.replicate_verbatim();
    Ok(ValkeyValue::SimpleStringStatic("OK"))
}
