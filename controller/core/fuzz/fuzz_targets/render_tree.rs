//! Fuzzes the render intake the controller runs on every revision and `sealsync render` runs
//! on a directory: a tree of YAML and JSON files → `render`. The input is split into files at
//! each `\0`; the first line of each part is its path. Properties: no panic; the limits hold
//! (objects, files, bytes); every rendered object has apiVersion, kind and a valid name; and
//! no error message quotes a long stringData value.
//!
//! Run: `cargo fuzz run render_tree seeds-render` from `controller/core/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealsync_core::render::{is_object_name, render, RenderLimits, SourceFile};

fuzz_target!(|data: &[u8]| {
    let mut files = Vec::new();
    for part in data.split(|b| *b == 0).take(64) {
        let (path, contents) = match part.iter().position(|b| *b == b'\n') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let Ok(path) = std::str::from_utf8(path) else {
            continue;
        };
        files.push(SourceFile {
            path: path.to_owned(),
            contents: contents.to_vec(),
        });
    }
    let limits = RenderLimits::new(16, 64 * 1024, 256 * 1024, 128);
    match render(&files, "", &limits) {
        Ok(manifests) => {
            assert!(manifests.len() <= limits.max_objects);
            for m in &manifests {
                assert!(!m.api_version().is_empty() && !m.kind().is_empty());
                assert!(is_object_name(m.name()), "invalid name rendered");
            }
        }
        Err(e) => {
            let message = e.to_string();
            for file in &files {
                let Ok(text) = std::str::from_utf8(&file.contents) else {
                    continue;
                };
                // A long, distinctive token after `stringData:` on one line is a value.
                for line in text.lines() {
                    let Some((_, value)) = line.split_once(": ") else {
                        continue;
                    };
                    let value = value.trim();
                    if value.len() >= 24
                        && value.chars().all(|c| c.is_ascii_alphanumeric())
                        && text.matches(value).count() == 1
                        && !file.path.contains(value)
                        && text.contains("stringData")
                    {
                        assert!(!message.contains(value), "value echoed: {message}");
                    }
                }
            }
        }
    }
});
