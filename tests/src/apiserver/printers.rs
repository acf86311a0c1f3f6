//! The table columns of built-in kinds, as kube-apiserver's printers
//! (`pkg/printers/internalversion`) define them: what `kubectl get` shows, with `-o wide`
//! columns at priority 1. Cells read what is stored; fields a controller would fill (status)
//! print as kube-apiserver prints them when absent.

use serde_json::{json, Value};

use super::selectors::label_selector_string;
use super::table::{age, age_col, col, name_col, Col};

fn wide(mut c: Col) -> Col {
    c.priority = 1;
    c
}

fn int_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn str_at<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// `labels.FormatLabels`: `k=v,k2=v2`, sorted, or `<none>`.
fn format_labels(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    or_none(pairs.join(","))
}

/// `metav1.FormatLabelSelector`: the selector's string form, or `<none>`.
fn format_selector(selector: Option<&Value>) -> String {
    or_none(label_selector_string(selector))
}

/// The names and images of a pod template's containers (`layoutContainerCells`), at `-o wide`.
fn template_cells(containers: &'static str) -> [Col; 2] {
    let joined = move |o: &Value, field: &str| -> String {
        o.pointer(containers)
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get(field).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    [
        wide(col("Containers", "string", "", move |o, _| {
            json!(joined(o, "name"))
        })),
        wide(col("Images", "string", "", move |o, _| {
            json!(joined(o, "image"))
        })),
    ]
}

/// `spec.replicas`, or the 1 kube-apiserver defaults it to.
fn desired_replicas(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// `ready/desired`, as Deployments and StatefulSets print it.
fn ready_of_desired() -> Col {
    col("Ready", "string", "", |o, _| {
        json!(format!(
            "{}/{}",
            int_at(o, "/status/readyReplicas"),
            desired_replicas(o)
        ))
    })
}

fn selector_col(ptr: &'static str) -> Col {
    wide(col("Selector", "string", "", move |o, _| {
        json!(format_selector(o.pointer(ptr)))
    }))
}

fn created_at() -> Col {
    col("Created At", "date", "", |o, _| {
        json!(str_at(o, "/metadata/creationTimestamp"))
    })
}

/// kube-apiserver's columns for a built-in resource, when it defines its own.
pub fn builtin(group: &str, plural: &str) -> Option<Vec<Col>> {
    let cols = match (group, plural) {
        ("", "pods") => pod_columns(),
        ("", "services") => vec![
            name_col(),
            col("Type", "string", "", |o, _| json!(str_at(o, "/spec/type"))),
            col("Cluster-IP", "string", "", |o, _| {
                json!(or_none(str_at(o, "/spec/clusterIPs/0").to_string()))
            }),
            col("External-IP", "string", "", |o, _| {
                json!(service_external_ip(o))
            }),
            col("Port(s)", "string", "", |o, _| json!(service_ports(o))),
            age_col(),
            wide(col("Selector", "string", "", |o, _| {
                json!(format_labels(o.pointer("/spec/selector")))
            })),
        ],
        ("batch", "jobs") => {
            let mut cols = vec![
                name_col(),
                col("Status", "string", "", |o, _| json!(job_status(o))),
                col("Completions", "string", "", |o, _| {
                    json!(job_completions(o))
                }),
                col("Duration", "string", "", |o, now| {
                    let start = o.pointer("/status/startTime");
                    json!(match (start, o.pointer("/status/completionTime")) {
                        (None, _) => String::new(),
                        (Some(s), None) => age(Some(s), now),
                        (Some(s), Some(c)) => span(s, c),
                    })
                }),
                age_col(),
            ];
            cols.extend(template_cells("/spec/template/spec/containers"));
            cols.push(selector_col("/spec/selector"));
            cols
        }
        ("batch", "cronjobs") => {
            let mut cols = vec![
                name_col(),
                col("Schedule", "string", "", |o, _| {
                    json!(str_at(o, "/spec/schedule"))
                }),
                col("Timezone", "string", "", |o, _| {
                    json!(or_none(str_at(o, "/spec/timeZone").to_string()))
                }),
                col("Suspend", "boolean", "", |o, _| {
                    json!(match o.pointer("/spec/suspend").and_then(Value::as_bool) {
                        Some(true) => "True",
                        Some(false) => "False",
                        None => "<unset>",
                    })
                }),
                col("Active", "integer", "", |o, _| {
                    json!(o
                        .pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len))
                }),
                col("Last Schedule", "string", "", |o, now| {
                    json!(match o.pointer("/status/lastScheduleTime") {
                        Some(t) => age(Some(t), now),
                        None => "<none>".into(),
                    })
                }),
                age_col(),
            ];
            cols.extend(template_cells(
                "/spec/jobTemplate/spec/template/spec/containers",
            ));
            cols.push(selector_col("/spec/jobTemplate/spec/selector"));
            cols
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => {
            let mut cols = vec![
                name_col(),
                col("Desired", "integer", "", |o, _| json!(desired_replicas(o))),
                col("Current", "integer", "", |o, _| {
                    json!(int_at(o, "/status/replicas"))
                }),
                col("Ready", "integer", "", |o, _| {
                    json!(int_at(o, "/status/readyReplicas"))
                }),
                age_col(),
            ];
            cols.extend(template_cells("/spec/template/spec/containers"));
            if group.is_empty() {
                // A ReplicationController's selector is a plain label map.
                cols.push(wide(col("Selector", "string", "", |o, _| {
                    json!(format_labels(o.pointer("/spec/selector")))
                })));
            } else {
                cols.push(selector_col("/spec/selector"));
            }
            cols
        }
        ("apps", "deployments") => {
            let mut cols = vec![
                name_col(),
                ready_of_desired(),
                col("Up-to-date", "string", "", |o, _| {
                    json!(int_at(o, "/status/updatedReplicas"))
                }),
                col("Available", "string", "", |o, _| {
                    json!(int_at(o, "/status/availableReplicas"))
                }),
                age_col(),
            ];
            cols.extend(template_cells("/spec/template/spec/containers"));
            cols.push(selector_col("/spec/selector"));
            cols
        }
        ("apps", "statefulsets") => {
            let mut cols = vec![name_col(), ready_of_desired(), age_col()];
            cols.extend(template_cells("/spec/template/spec/containers"));
            cols
        }
        ("apps", "daemonsets") => {
            let mut cols = vec![name_col()];
            for (name, ptr) in [
                ("Desired", "/status/desiredNumberScheduled"),
                ("Current", "/status/currentNumberScheduled"),
                ("Ready", "/status/numberReady"),
                ("Up-to-date", "/status/updatedNumberScheduled"),
                ("Available", "/status/numberAvailable"),
            ] {
                cols.push(col(name, "integer", "", move |o, _| json!(int_at(o, ptr))));
            }
            cols.push(col("Node Selector", "string", "", |o, _| {
                json!(format_labels(o.pointer("/spec/template/spec/nodeSelector")))
            }));
            cols.push(age_col());
            cols.extend(template_cells("/spec/template/spec/containers"));
            cols.push(selector_col("/spec/selector"));
            cols
        }
        ("rbac.authorization.k8s.io", "roles" | "clusterroles") | ("", "limitranges") => {
            vec![name_col(), created_at()]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![
            name_col(),
            col("Role", "string", "", |o, _| {
                json!(format!(
                    "{}/{}",
                    str_at(o, "/roleRef/kind"),
                    str_at(o, "/roleRef/name")
                ))
            }),
            age_col(),
            wide(col("Users", "string", "", |o, _| {
                json!(subjects(o, "User"))
            })),
            wide(col("Groups", "string", "", |o, _| {
                json!(subjects(o, "Group"))
            })),
            wide(col("ServiceAccounts", "string", "", |o, _| {
                json!(subjects(o, "ServiceAccount"))
            })),
        ],
        ("networking.k8s.io", "ingresses") => vec![
            name_col(),
            col("Class", "string", "", |o, _| {
                json!(or_none(str_at(o, "/spec/ingressClassName").to_string()))
            }),
            col("Hosts", "string", "", |o, _| json!(ingress_hosts(o))),
            col("Address", "string", "", |o, _| json!(ingress_address(o))),
            col("Ports", "string", "", |o, _| {
                json!(if o
                    .pointer("/spec/tls")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty())
                {
                    "80, 443"
                } else {
                    "80"
                })
            }),
            age_col(),
        ],
        ("", "endpoints") => vec![
            name_col(),
            col("Endpoints", "string", "", |o, _| json!(endpoints(o))),
            age_col(),
        ],
        ("coordination.k8s.io", "leases") => vec![
            name_col(),
            col("Holder", "string", "", |o, _| {
                json!(str_at(o, "/spec/holderIdentity"))
            }),
            age_col(),
        ],
        ("", "persistentvolumeclaims") => vec![
            name_col(),
            col("Status", "string", "", |o, _| {
                json!(str_at(o, "/status/phase"))
            }),
            col("Volume", "string", "", |o, _| {
                json!(str_at(o, "/spec/volumeName"))
            }),
            col("Capacity", "string", "", |o, _| {
                json!(str_at(o, "/status/capacity/storage"))
            }),
            col("Access Modes", "string", "", |o, _| {
                json!(access_modes(o.pointer("/status/accessModes")))
            }),
            col("StorageClass", "string", "", |o, _| {
                json!(str_at(o, "/spec/storageClassName"))
            }),
            col("VolumeAttributesClass", "string", "", |o, _| {
                json!(match o
                    .pointer("/spec/volumeAttributesClassName")
                    .and_then(Value::as_str)
                {
                    Some(c) => c.to_string(),
                    None => "<unset>".into(),
                })
            }),
            age_col(),
            wide(col("VolumeMode", "string", "", |o, _| {
                json!(
                    match o.pointer("/spec/volumeMode").and_then(Value::as_str) {
                        Some(m) => m.to_string(),
                        None => "<unset>".into(),
                    }
                )
            })),
        ],
        ("", "resourcequotas") => vec![
            name_col(),
            col("Request", "string", "", |o, _| {
                json!(quota_column(o, false))
            }),
            col("Limit", "string", "", |o, _| json!(quota_column(o, true))),
            age_col(),
        ],
        ("", "podtemplates") => {
            let [names, images] = template_cells("/template/spec/containers");
            let unwide = |mut c: Col| {
                c.priority = 0;
                c
            };
            vec![
                name_col(),
                unwide(names),
                unwide(images),
                col("Pod Labels", "string", "", |o, _| {
                    json!(format_labels(o.pointer("/template/metadata/labels")))
                }),
            ]
        }
        _ => return None,
    };
    Some(cols)
}

fn pod_columns() -> Vec<Col> {
    vec![
        name_col(),
        col("Ready", "string", "", |o, _| {
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |cs| {
                    cs.iter()
                        .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                        .count()
                });
            json!(format!("{ready}/{total}"))
        }),
        col("Status", "string", "", |o, _| {
            let reason = str_at(o, "/status/reason");
            let phase = str_at(o, "/status/phase");
            json!(if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else if !reason.is_empty() {
                reason
            } else {
                phase
            })
        }),
        col("Restarts", "string", "", |o, _| {
            let restarts: i64 = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |cs| {
                    cs.iter()
                        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                        .sum()
                });
            json!(restarts.to_string())
        }),
        age_col(),
        wide(col("IP", "string", "", |o, _| {
            json!(or_none(str_at(o, "/status/podIP").to_string()))
        })),
        wide(col("Node", "string", "", |o, _| {
            json!(or_none(str_at(o, "/spec/nodeName").to_string()))
        })),
        wide(col("Nominated Node", "string", "", |o, _| {
            json!(or_none(str_at(o, "/status/nominatedNodeName").to_string()))
        })),
        wide(col("Readiness Gates", "string", "", |o, _| {
            let gates = o
                .pointer("/spec/readinessGates")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            json!(if gates == 0 {
                "<none>".to_string()
            } else {
                format!("0/{gates}")
            })
        })),
    ]
}

fn service_external_ip(o: &Value) -> String {
    let list = |ptr: &str| -> Vec<String> {
        o.pointer(ptr)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    match str_at(o, "/spec/type") {
        "ExternalName" => str_at(o, "/spec/externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = o
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|i| {
                            i.get("ip")
                                .or_else(|| i.get("hostname"))
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(list("/spec/externalIPs"));
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ => or_none(list("/spec/externalIPs").join(",")),
    }
}

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                    let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(node) if node > 0 => format!("{port}:{node}/{protocol}"),
                        _ => format!("{port}/{protocol}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    or_none(ports.join(","))
}

fn job_status(o: &Value) -> &'static str {
    let has = |t: &str| {
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some(t)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job_completions(o: &Value) -> String {
    let succeeded = int_at(o, "/status/succeeded");
    match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o.pointer("/spec/parallelism").and_then(Value::as_i64) {
            Some(p) if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// The time between two timestamps, as kube-apiserver prints a duration.
fn span(start: &Value, end: &Value) -> String {
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    match (parse(start), parse(end)) {
        (Some(s), Some(e)) => age(Some(start), s.timestamp() + (e - s).num_seconds()),
        _ => String::new(),
    }
}

fn subjects(o: &Value, kind: &str) -> String {
    o.get("subjects")
        .and_then(Value::as_array)
        .map(|ss| {
            ss.iter()
                .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
                .map(|s| {
                    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                    match s.get("namespace").and_then(Value::as_str) {
                        Some(ns) if kind == "ServiceAccount" => format!("{ns}/{name}"),
                        _ => name.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `formatEndpoints`: `ip:port` of every address and port, the first three, then a count.
fn endpoints(o: &Value) -> String {
    let Some(subsets) = o
        .get("subsets")
        .and_then(Value::as_array)
        .filter(|s| !s.is_empty())
    else {
        return "<none>".into();
    };
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    for subset in subsets {
        let addresses: Vec<&str> = subset
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("ip").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let ports: Vec<i64> = subset
            .get("ports")
            .and_then(Value::as_array)
            .map(|p| {
                p.iter()
                    .filter_map(|x| x.get("port").and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            for ip in &addresses {
                if list.len() < 3 {
                    list.push(ip.to_string());
                }
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for ip in &addresses {
                if list.len() < 3 {
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    list.push(format!("{host}:{port}"));
                }
            }
        }
    }
    let shown = list.len();
    let mut out = list.join(",");
    if count > shown {
        out.push_str(&format!(" + {} more...", count - shown));
    }
    out
}

fn ingress_hosts(o: &Value) -> String {
    let hosts: Vec<&str> = o
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .filter_map(|r| r.get("host").and_then(Value::as_str))
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if hosts.is_empty() {
        return "*".into();
    }
    if hosts.len() > 3 {
        return format!("{} + {} more...", hosts[..3].join(","), hosts.len() - 3);
    }
    hosts.join(",")
}

fn ingress_address(o: &Value) -> String {
    let mut out: Vec<&str> = o
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")))
                .filter_map(Value::as_str)
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out.dedup();
    out.join(",")
}

fn access_modes(modes: Option<&Value>) -> String {
    let short = |m: &str| match m {
        "ReadWriteOnce" => "RWO",
        "ReadOnlyMany" => "ROX",
        "ReadWriteMany" => "RWX",
        "ReadWriteOncePod" => "RWOP",
        _ => "",
    };
    let mut out: Vec<&str> = Vec::new();
    for wanted in [
        "ReadWriteOnce",
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOncePod",
    ] {
        if modes
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|m| m.as_str() == Some(wanted)))
        {
            out.push(short(wanted));
        }
    }
    out.join(",")
}

/// The Request or Limit column of a ResourceQuota: `resource: used/hard`, sorted.
fn quota_column(o: &Value, limits: bool) -> String {
    let Some(hard) = o.pointer("/status/hard").and_then(Value::as_object) else {
        return String::new();
    };
    let mut names: Vec<&String> = hard.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter(|n| n.starts_with("limits.") == limits)
        .map(|n| {
            let used = o
                .pointer(&format!("/status/used/{n}"))
                .and_then(Value::as_str)
                .unwrap_or("0");
            format!("{n}: {used}/{}", hard[n].as_str().unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join(", ")
}
