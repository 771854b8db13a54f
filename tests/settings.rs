//! One schema for a run's settings: every field of `TrainConfig` is a flag of `pggan train`, and
//! every setting of the page (index.html's controls marked `data-setting`) is a field of
//! `TrainConfig` with its default. A field added to the configuration without its flag, or a
//! control whose field or default drifted, fails here.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::train::config::TrainConfig;
use serde_json::Value;

/// The configuration's fields as dotted paths (`net.max_res`, `adam.lr`, `seed`, ...), with
/// their defaults; `precision`, which config.json leaves out at its default, included.
fn fields() -> Vec<(String, Value)> {
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
                for (k, sub) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&path, sub, out);
                }
            }
            _ => out.push((prefix.to_string(), v.clone())),
        }
    }
    let mut out = Vec::new();
    leaves("", &serde_json::to_value(TrainConfig::default()).unwrap(), &mut out);
    if !out.iter().any(|(p, _)| p == "precision") {
        out.push(("precision".into(), Value::String("f32".into())));
    }
    out
}

/// The flag of `pggan train` that sets a field: its last name with dashes (`--max-res`), and
/// `--no-mirror` for the one switch.
fn flag(path: &str) -> String {
    match path {
        "mirror" => "--no-mirror".into(),
        p => format!("--{}", p.rsplit('.').next().unwrap().replace('_', "-")),
    }
}

#[test]
fn every_field_is_a_flag() {
    let fields = fields();
    assert!(fields.len() > 20, "{fields:?}");
    let help = common::run_pggan(&["train", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let missing: Vec<String> = fields
        .iter()
        .map(|(p, _)| flag(p))
        .filter(|f| !help.contains(&format!("{f} ")) && !help.contains(&format!("{f}\n")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields of TrainConfig without a flag of pggan train: {missing:?}\n{help}"
    );
}

/// Each control of index.html marked `data-setting="path"`, with its default: an input's `value`,
/// a select's selected option (its `value`, else its text).
fn page_settings() -> Vec<(String, String)> {
    let html = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/index.html")).unwrap();
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[at..at + tag[at..].find('"')?].to_string())
    };
    let mut out = Vec::new();
    for (at, _) in html.match_indices("data-setting=\"") {
        let start = html[..at].rfind('<').unwrap();
        let tag = &html[start..start + html[start..].find('>').unwrap()];
        let path = attr(tag, "data-setting").unwrap();
        let default = if tag.starts_with("<select") {
            let body = &html[start..start + html[start..].find("</select>").unwrap()];
            let option = body
                .split("<option")
                .find(|o| o.contains(" selected"))
                .expect("a selected option");
            let open = &option[..option.find('>').unwrap()];
            attr(open, "value")
                .unwrap_or_else(|| option[option.find('>').unwrap() + 1..option.find('<').unwrap()].to_string())
        } else {
            attr(tag, "value").expect("an input with its default value")
        };
        out.push((path, default));
    }
    out
}

#[test]
fn the_pages_settings_are_fields_with_their_defaults() {
    let fields = fields();
    let settings = page_settings();
    // The controls the page's end-to-end test fills.
    assert_eq!(settings.len(), 8, "{settings:?}");
    for (path, default) in settings {
        let (_, want) = fields
            .iter()
            .find(|(p, _)| *p == path)
            .unwrap_or_else(|| panic!("index.html sets {path}, which is not a field of TrainConfig"));
        let have: f64 = default.parse().unwrap();
        assert_eq!(Some(have), want.as_f64(), "index.html's default of {path}");
    }
}
