//! export and import of definitions.

use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::client::{Method, NotFound, seg};
use crate::commands::{Ctx, pretty, read_input, shown};

/// Runs `export definitions`.
pub fn export(ctx: &Ctx, file: &Path) -> Result<String> {
    let (path, scope) = if ctx.vhost_given {
        (
            format!("/api/definitions/{}", seg(ctx.vhost)),
            format!("vhost '{}'", ctx.vhost),
        )
    } else {
        ("/api/definitions".to_owned(), "the broker".to_owned())
    };
    let not_found = NotFound::new(format!("vhost '{}' not found", ctx.vhost), ctx.vhost);
    let definitions = ctx.client.get(&path, &not_found)?;
    let text = pretty(&definitions)?;
    if file == Path::new("-") {
        return Ok(text);
    }
    std::fs::write(file, &text).with_context(|| format!("cannot write {}", file.display()))?;
    let counts = summary(&definitions);
    ctx.done(
        format!(
            "exported definitions of {scope} to {} ({counts})",
            file.display()
        ),
        json!({ "file": file.display().to_string() }),
    )
}

/// Runs `import definitions`.
pub fn import(ctx: &Ctx, file: &Path) -> Result<String> {
    let bytes = read_input(file)?;
    let definitions: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", shown(file)))?;
    if !definitions.is_object() {
        bail!(
            "{} is not a definitions file (expected a JSON object)",
            shown(file)
        );
    }
    let (path, scope) = if ctx.vhost_given {
        (
            format!("/api/definitions/{}", seg(ctx.vhost)),
            format!("vhost '{}'", ctx.vhost),
        )
    } else {
        ("/api/definitions".to_owned(), "the broker".to_owned())
    };
    let not_found = NotFound::new(format!("vhost '{}' not found", ctx.vhost), ctx.vhost);
    ctx.client
        .request(Method::Post, &path, Some(&definitions), &not_found)?;
    ctx.done(
        format!(
            "imported definitions from {} into {scope} ({})",
            shown(file),
            summary(&definitions)
        ),
        json!({ "file": shown(file) }),
    )
}

/// "2 vhosts, 1 users, 3 queues, ..." for the lists a definitions object holds.
fn summary(definitions: &Value) -> String {
    let parts: Vec<String> = [
        "users",
        "vhosts",
        "permissions",
        "exchanges",
        "queues",
        "bindings",
        "policies",
    ]
    .iter()
    .filter_map(|key| {
        definitions
            .get(key)
            .and_then(Value::as_array)
            .map(|a| format!("{} {key}", a.len()))
    })
    .collect();
    if parts.is_empty() {
        "nothing listed".to_owned()
    } else {
        parts.join(", ")
    }
}
