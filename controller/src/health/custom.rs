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
                Program::compile(text).map_err(|error| {
                    format!("spec.healthCheckExprs[{i}].{field}: not a CEL expression: {error}")
                })
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
        if object["metadata"]["deletionTimestamp"].is_string() {
            return Health::Terminating;
        }
        let generation = object["metadata"]["generation"].as_i64();
        let observed = object["status"]["observedGeneration"].as_i64();
        if let (Some(generation), Some(observed)) = (generation, observed) {
            if observed < generation {
                return Health::InProgress(format!(
                    "the latest generation ({generation}) is not observed yet ({observed})"
                ));
            }
        }
        let Ok(value) = cel::to_value(object) else {
            return Health::InProgress("the object cannot be read by CEL".to_owned());
        };
        let mut context = Context::default();
        context.add_variable_from_value("self", value);
        let is_true = |program: &Program| match program.execute(&context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(_) => Err("does not evaluate to a boolean"),
            Err(_) => Err("could not be evaluated (use has() for fields that may be missing)"),
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
    }
}
