//! Custom health (`spec.healthCheckExprs`): CEL expressions over the object, bound as `self`,
//! evaluated in Flux's order (`inProgress`, `failed`, `current`) after the generic rules
//! (deletion, `observedGeneration`). Messages name the expression that decided, never a value:
//! an evaluation error is reported without its text, which can quote the object.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cel::{Context, Program};
use sealsync_core::health::Health;
use sealsync_core::HealthCheckExpr;
use serde_json::Value as Json;

/// The compiled expressions of one kind.
pub(crate) struct CustomHealth {
    /// `apiVersion` and kind they judge.
    pub(crate) api_version: String,
    /// The kind.
    pub(crate) kind: String,
    in_progress: Option<Program>,
    failed: Option<Program>,
    current: Program,
    /// Tells apart watches that judge by different expressions.
    pub(crate) digest: u64,
}

impl std::fmt::Debug for CustomHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomHealth")
            .field("api_version", &self.api_version)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Compiles `spec.healthCheckExprs`; an error names the field and the parser's complaint.
pub(crate) fn compile(exprs: &[HealthCheckExpr]) -> Result<Vec<Arc<CustomHealth>>, String> {
    exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let program = |field: &str, text: &str| {
                let program = Program::compile(text).map_err(|error| {
                    format!("spec.healthCheckExprs[{i}].{field}: not a CEL expression: {error}")
                })?;
                if comprehension_depth(program.expression()) > MAX_COMPREHENSION_DEPTH {
                    return Err(format!(
                        "spec.healthCheckExprs[{i}].{field}: macros (all, exists, map, filter) nest at most {MAX_COMPREHENSION_DEPTH} deep: each level multiplies the work on every event"
                    ));
                }
                Ok(program)
            };
            let mut hasher = DefaultHasher::new();
            e.hash(&mut hasher);
            Ok(Arc::new(CustomHealth {
                api_version: e.api_version.clone(),
                kind: e.kind.clone(),
                in_progress: e
                    .in_progress
                    .as_deref()
                    .map(|t| program("inProgress", t))
                    .transpose()?,
                failed: e
                    .failed
                    .as_deref()
                    .map(|t| program("failed", t))
                    .transpose()?,
                current: program("current", &e.current)?,
                digest: hasher.finish(),
            }))
        })
        .collect()
}

/// How deep comprehension macros may nest: two levels of `exists` over the conditions of an
/// object is plenty, and deeper ones grow with the power of the lists' length.
const MAX_COMPREHENSION_DEPTH: usize = 2;

/// The deepest nesting of comprehensions (expanded macros) in `expr`.
fn comprehension_depth(expr: &cel::IdedExpr) -> usize {
    use cel::common::ast::{EntryExpr, Expr};
    let deepest = |exprs: &mut dyn Iterator<Item = &cel::IdedExpr>| {
        exprs.map(comprehension_depth).max().unwrap_or(0)
    };
    match &expr.expr {
        Expr::Comprehension(c) => {
            1 + deepest(
                &mut [
                    &c.iter_range,
                    &c.accu_init,
                    &c.loop_cond,
                    &c.loop_step,
                    &c.result,
                ]
                .into_iter(),
            )
        }
        Expr::Call(call) => deepest(&mut call.target.iter().map(|t| &**t).chain(call.args.iter())),
        Expr::List(list) => deepest(&mut list.elements.iter()),
        Expr::Map(map) => deepest(&mut map.entries.iter().flat_map(|e| match &e.expr {
            EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
            EntryExpr::StructField(field) => vec![&field.value],
        })),
        Expr::Struct(st) => deepest(&mut st.entries.iter().flat_map(|e| match &e.expr {
            EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
            EntryExpr::StructField(field) => vec![&field.value],
        })),
        Expr::Select(select) => comprehension_depth(&select.operand),
        _ => 0,
    }
}

/// The expressions for `api_version` and `kind`, if any.
pub(crate) fn for_kind(
    custom: &[Arc<CustomHealth>],
    api_version: &str,
    kind: &str,
) -> Option<Arc<CustomHealth>> {
    custom
        .iter()
        .find(|c| c.api_version == api_version && c.kind == kind)
        .cloned()
}

impl CustomHealth {
    /// The health of `object` by these expressions.
    pub(crate) fn judge(&self, object: &Json) -> Health {
        if let Some(pending) = sealsync_core::health::generic_pending(object) {
            return pending;
        }
        let Ok(value) = cel::to_value(object) else {
            return Health::InProgress("the object cannot be read by CEL".to_owned());
        };
        let mut context = Context::default();
        context.add_variable_from_value("self", value);
        let is_true = |program: &Program| {
            // The evaluator has unfinished corners that panic: a panic here would end the
            // watch task, so it is caught and counted as an expression that cannot be evaluated.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                program.execute(&context)
            }));
            match run {
                Ok(Ok(cel::Value::Bool(b))) => Ok(b),
                Ok(Ok(_)) => Err("does not evaluate to a boolean"),
                Ok(Err(_)) | Err(_) => {
                    Err("could not be evaluated (use has() for fields that may be missing)")
                }
            }
        };
        for (name, program, decided) in [
            ("inProgress", self.in_progress.as_ref(), Decided::InProgress),
            ("failed", self.failed.as_ref(), Decided::Failed),
            ("current", Some(&self.current), Decided::Current),
        ] {
            let Some(program) = program else {
                continue;
            };
            match is_true(program) {
                Ok(true) => {
                    return match decided {
                        Decided::InProgress => {
                            Health::InProgress("the inProgress expression is true".to_owned())
                        }
                        Decided::Failed => {
                            Health::Failed("the failed expression is true".to_owned())
                        }
                        Decided::Current => Health::Current,
                    }
                }
                Ok(false) => {}
                Err(why) => {
                    return Health::InProgress(format!("the {name} expression {why}"));
                }
            }
        }
        Health::InProgress("no health expression is true yet".to_owned())
    }
}

#[derive(Clone, Copy)]
enum Decided {
    InProgress,
    Failed,
    Current,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn exprs() -> Vec<Arc<CustomHealth>> {
        compile(&[HealthCheckExpr {
            api_version: "example.com/v1".to_owned(),
            kind: "Database".to_owned(),
            current: "self.status.phase == 'Ready'".to_owned(),
            in_progress: Some("has(self.status.pending) && self.status.pending > 0".to_owned()),
            failed: Some("self.status.phase == 'Broken'".to_owned()),
        }])
        .expect("compiles")
    }

    fn database(status: Json) -> Json {
        json!({"apiVersion": "example.com/v1", "kind": "Database",
               "metadata": {"name": "db", "generation": 2}, "status": status})
    }

    #[test]
    fn expressions_decide_in_flux_order() {
        let custom = for_kind(&exprs(), "example.com/v1", "Database").expect("found");
        assert_eq!(
            custom.judge(&database(
                json!({"phase": "Ready", "observedGeneration": 2})
            )),
            Health::Current
        );
        assert_eq!(
            custom.judge(&database(json!({"phase": "Broken"}))),
            Health::Failed("the failed expression is true".to_owned())
        );
        // inProgress is asked first.
        assert!(matches!(
            custom.judge(&database(json!({"phase": "Ready", "pending": 2}))),
            Health::InProgress(_)
        ));
        assert_eq!(
            custom.judge(&database(json!({"phase": "Creating"}))),
            Health::InProgress("no health expression is true yet".to_owned())
        );
        // The generic rule first: an older generation says nothing.
        assert!(matches!(
            custom.judge(&database(json!({"phase": "Ready", "observedGeneration": 1}))),
            Health::InProgress(m) if m.contains("generation")
        ));
        assert!(for_kind(&exprs(), "example.com/v1", "Cache").is_none());
    }

    #[test]
    fn errors_say_which_expression_without_quoting_the_object() {
        let custom = for_kind(&exprs(), "example.com/v1", "Database").expect("found");
        // `has(self.status.pending)` of an object without a status: no such key.
        let Health::InProgress(message) = custom.judge(&json!({
            "apiVersion": "example.com/v1", "kind": "Database",
            "metadata": {"name": "db"}, "spec": {"password": "canary-cel-1"}}))
        else {
            panic!("in progress");
        };
        assert!(
            message.starts_with("the inProgress expression could not be evaluated"),
            "{message}"
        );
        assert!(!message.contains("canary"));
        let error = compile(&[HealthCheckExpr {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            current: "self.status.phase ==".to_owned(),
            in_progress: None,
            failed: None,
        }])
        .expect_err("refused");
        assert!(
            error.starts_with("spec.healthCheckExprs[0].current: not a CEL expression"),
            "{error}"
        );
        let nested = compile(&[HealthCheckExpr {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            current: "self.a.all(x, self.a.all(y, self.a.all(z, x == y && y == z)))".to_owned(),
            in_progress: None,
            failed: None,
        }])
        .expect_err("refused");
        assert!(nested.contains("nest at most 2 deep"), "{nested}");
        assert!(compile(&[HealthCheckExpr {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            current: "self.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')"
                .to_owned(),
            in_progress: None,
            failed: None,
        }])
        .is_ok());
    }
}
