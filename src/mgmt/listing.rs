//! What every list endpoint does with its items, as `rabbit_mgmt_util` does:
//! sort (`sort`, `sort_reverse`; by name by default), filter by `name`
//! (substring, or a regex with `use_regex=true`) and paginate (`page`,
//! `page_size`) when `page` is given, then keep only `columns`. And the
//! gathering of objects from the vhosts a caller sees.

use axum::Json;
use axum::response::IntoResponse;
use regex::RegexBuilder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResult};
use super::caller::Caller;
use super::vhosts::live_vhost;
use crate::broker::Broker;
use crate::vhost::VHost;

/// RabbitMQ's page size limit.
const MAX_PAGE_SIZE: u64 = 500;

/// Query parameters of a list endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    page_size: Option<String>,
    name: Option<String>,
    use_regex: Option<String>,
    columns: Option<String>,
    sort: Option<String>,
    sort_reverse: Option<String>,
}

impl ListQuery {
    /// Applies the query to `items` and answers with JSON.
    pub fn respond(&self, items: Vec<Value>) -> ApiResult {
        let mut items = items;
        self.sort(&mut items);
        let Some(page) = &self.page else {
            return Ok(Json(Value::Array(self.keep_columns(items))).into_response());
        };
        let invalid = || {
            ApiError::with_error(
                "invalid_pagination_parameters",
                format!(
                    "Invalid pagination parameters: page number {page}, page size {}",
                    self.page_size.as_deref().unwrap_or("undefined")
                ),
            )
        };
        let page: u64 = page.parse().map_err(|_| invalid())?;
        let page_size: u64 = match &self.page_size {
            Some(size) => size.parse().map_err(|_| invalid())?,
            None => 100,
        };
        if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
            return Err(invalid());
        }
        let total_count = items.len();
        let filtered = self.filter(items)?;
        let filtered_count = filtered.len();
        let page_count = filtered_count.div_ceil(page_size as usize).max(1);
        if page as usize > page_count {
            return Err(ApiError::with_error(
                "page_out_of_range",
                format!(
                    "Page out of range, page: {page} page size: {page_size}, len: {filtered_count}"
                ),
            ));
        }
        let start = (page as usize - 1) * page_size as usize;
        let items: Vec<Value> = filtered
            .into_iter()
            .skip(start)
            .take(page_size as usize)
            .collect();
        let body = json!({
            "filtered_count": filtered_count,
            "item_count": items.len(),
            "items": self.keep_columns(items),
            "page": page,
            "page_count": page_count,
            "page_size": page_size,
            "total_count": total_count,
        });
        Ok(Json(body).into_response())
    }

    /// A one-object endpoint's answer: `item` with only the requested
    /// columns, or 404 when there is none.
    pub fn respond_one(&self, item: Option<Value>) -> ApiResult {
        let item = item.ok_or_else(ApiError::not_found)?;
        let mut kept = self.keep_columns(vec![item]);
        Ok(Json(kept.pop().unwrap_or(Value::Null)).into_response())
    }

    fn sort(&self, items: &mut [Value]) {
        let key = self.sort.as_deref().unwrap_or("");
        let text = |v: &Value, k: &str| match lookup(v, k) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        if key.is_empty() {
            items.sort_by(|a, b| {
                (text(a, "vhost"), text(a, "name")).cmp(&(text(b, "vhost"), text(b, "name")))
            });
        } else {
            items.sort_by(|a, b| match (lookup(a, key), lookup(b, key)) {
                (Some(Value::Number(x)), Some(Value::Number(y))) => x
                    .as_f64()
                    .partial_cmp(&y.as_f64())
                    .unwrap_or(std::cmp::Ordering::Equal),
                _ => text(a, key).cmp(&text(b, key)),
            });
        }
        if self.sort_reverse.as_deref() == Some("true") {
            items.reverse();
        }
    }

    fn filter(&self, items: Vec<Value>) -> ApiResult<Vec<Value>> {
        let Some(wanted) = self.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(items);
        };
        let name_of = |v: &Value| {
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        if self.use_regex.as_deref() == Some("true") {
            let re = RegexBuilder::new(wanted)
                .case_insensitive(true)
                .build()
                .map_err(|e| ApiError::bad_request(format!("invalid regex: {e}")))?;
            Ok(items
                .into_iter()
                .filter(|v| re.is_match(&name_of(v)))
                .collect())
        } else {
            let wanted = wanted.to_lowercase();
            Ok(items
                .into_iter()
                .filter(|v| name_of(v).to_lowercase().contains(&wanted))
                .collect())
        }
    }

    fn keep_columns(&self, items: Vec<Value>) -> Vec<Value> {
        let Some(columns) = self.columns.as_deref().filter(|c| !c.is_empty()) else {
            return items;
        };
        let columns: Vec<&str> = columns.split(',').map(str::trim).collect();
        items
            .into_iter()
            .map(|item| {
                let mut out = Map::new();
                for column in &columns {
                    if let Some(value) = lookup(&item, column) {
                        insert_path(&mut out, column, value.clone());
                    }
                }
                Value::Object(out)
            })
            .collect()
    }
}

/// The objects of the vhosts the caller sees, as JSON, each vhost's as
/// `objects` gives them: of `only` when a vhost is named (404 when it does not
/// exist, 401 when the caller may not see it), else of every vhost they see.
/// What the lists of exchanges, queues and bindings, and their one-object
/// endpoints, start from.
pub fn per_vhost<I>(
    broker: &Broker,
    caller: &Caller,
    only: Option<&str>,
    mut objects: impl FnMut(&VHost) -> I,
) -> ApiResult<Vec<Value>>
where
    I: IntoIterator<Item = Value>,
{
    let vhosts = match only {
        Some(name) => {
            let vhost = live_vhost(broker, name)?;
            if !caller.sees_vhost(name) {
                return Err(ApiError::not_authorised("Access refused."));
            }
            vec![vhost]
        }
        None => broker
            .vhosts()
            .into_iter()
            .filter(|v| caller.sees_vhost(&v.name))
            .collect(),
    };
    Ok(vhosts.iter().flat_map(|v| objects(v)).collect())
}

/// A list endpoint's answer for objects that live in vhosts: those of every
/// vhost the caller sees, or of `only` (see [`per_vhost`]), each vhost's as
/// `objects` gives them, through `query`.
pub fn list_in_vhosts<I>(
    broker: &Broker,
    caller: &Caller,
    only: Option<&str>,
    query: &ListQuery,
    objects: impl FnMut(&VHost) -> I,
) -> ApiResult
where
    I: IntoIterator<Item = Value>,
{
    query.respond(per_vhost(broker, caller, only, objects)?)
}

/// A one-object endpoint's answer for an object of `vhost`: what `find`
/// finds there, with the requested columns; 401 when the caller may not see
/// the vhost, 404 when it or the object does not exist.
pub fn one_in_vhost(
    broker: &Broker,
    caller: &Caller,
    vhost: &str,
    query: &ListQuery,
    find: impl FnMut(&VHost) -> Option<Value>,
) -> ApiResult {
    let found = per_vhost(broker, caller, Some(vhost), find)?;
    query.respond_one(found.into_iter().next())
}

/// A registry record (user, permission) as a list item: its JSON object,
/// keys in serde_json's order.
pub fn as_item<T: Serialize>(record: &T) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

/// `a.b` looks into nested objects.
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn insert_path(out: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            out.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let inner = out
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                insert_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(page: &str, size: &str) -> ListQuery {
        ListQuery {
            page: Some(page.into()),
            page_size: Some(size.into()),
            ..Default::default()
        }
    }

    #[test]
    fn pages_and_errors_read_as_rabbitmq() {
        let items = vec![json!({"name": "b"}), json!({"name": "a"})];
        assert!(q("1", "1").respond(items.clone()).is_ok());
        let e = q("5", "1")
            .respond(items.clone())
            .expect_err("out of range");
        assert_eq!(e.reason, "Page out of range, page: 5 page size: 1, len: 2");
        let e = q("0", "1").respond(items).expect_err("page 0");
        assert_eq!(e.error, "invalid_pagination_parameters");
    }

    #[test]
    fn columns_keep_nested_paths() {
        let query = ListQuery {
            columns: Some("name,message_stats.publish".into()),
            ..Default::default()
        };
        let kept = query.keep_columns(vec![
            json!({"name": "q", "x": 1, "message_stats": {"publish": 3, "ack": 1}}),
        ]);
        assert_eq!(
            kept[0],
            json!({"name": "q", "message_stats": {"publish": 3}})
        );
    }
}
