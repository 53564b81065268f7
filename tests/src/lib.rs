//! Helpers for the workspace-level tests in `tests/tests/`: where the CloudFormation templates
//! are, `cfn-lint` and the template decoder from the project's `.venv` (run `scripts/setup`),
//! a tiny Lambda zip to deploy on moto (`zip`), and IAM policy documents as IAM (URL-encoded,
//! `percent-encoding`) or moto (a Python literal, read by Python's `ast.literal_eval`) returns them.
//!
//! Module map (one file): [`repo_root`] / [`venv_tool`]; [`templates`] / [`template`] / [`cfn_lint`]
//! (the CloudFormation templates); [`lambda_zip`]; [`policy_document`] / [`python_literal`] /
//! [`statements`] (IAM policies).
//!
//! The local AWS itself (a moto server killed on drop) is `sosw_test_support::LocalAws`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// A program from the project's virtualenv; panics with the fix when it is missing.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup` first",
        path.display()
    );
    path
}

/// Every CloudFormation template of the project (`cloudformation/*.yaml`), sorted.
pub fn templates() -> Vec<PathBuf> {
    let dir = repo_root().join("cloudformation");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    out.sort();
    out
}

/// The result of running `cfn-lint` on some templates.
#[derive(Debug)]
pub struct LintOutcome {
    /// `true` when cfn-lint exited 0 (no error, no warning).
    pub clean: bool,
    /// What it printed (stdout and stderr).
    pub output: String,
}

/// Run the project's `cfn-lint` (errors and warnings; informational checks included too).
pub fn cfn_lint(paths: &[PathBuf]) -> LintOutcome {
    let out = Command::new(venv_tool("cfn-lint"))
        .args(["--include-checks", "I", "--"])
        .args(paths)
        .current_dir(repo_root())
        .output()
        .expect("run cfn-lint");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    LintOutcome {
        clean: out.status.success() && output.trim().is_empty(),
        output,
    }
}

/// A template from `cloudformation/` as JSON, short-form tags expanded (`!Ref x` becomes
/// `{"Ref": "x"}`), decoded by cfn-lint's own YAML loader.
pub fn template(name: &str) -> Value {
    const DECODE: &str = "import json, sys\nfrom cfnlint.decode import decode\n\
        template, problems = decode(sys.argv[1])\n\
        if problems:\n    sys.exit('\\n'.join(str(p) for p in problems))\n\
        json.dump(template, sys.stdout)\n";
    let path = repo_root().join("cloudformation").join(name);
    let out = Command::new(venv_tool("python"))
        .args(["-c", DECODE])
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "decoding {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the decoder prints JSON")
}

/// A zip archive holding one executable file (`-rwxr-xr-x`), stored uncompressed: a stand-in
/// Lambda package.
pub fn lambda_zip(file_name: &str, contents: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755);
    zip.start_file(file_name, options).expect("start the zip entry");
    zip.write_all(contents).expect("write the zip entry");
    zip.finish().expect("finish the zip").into_inner()
}

/// A Python literal (what `repr` prints for dicts, lists, strings, numbers, `True`/`False`/`None`)
/// as JSON, parsed by Python's own `ast.literal_eval` from the project's `.venv`.
pub fn python_literal(text: &str) -> Result<Value, String> {
    use std::io::Write as _;
    let mut child = Command::new(venv_tool("python"))
        .args([
            "-c",
            "import ast, json, sys; print(json.dumps(ast.literal_eval(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .map_err(|e| format!("cannot write to python: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("python failed: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// An IAM policy document as IAM (or moto) returns it: URL-encoded JSON on real IAM; for inline
/// policies of roles created through CloudFormation, moto 5.2 returns the Python `repr` of the
/// document (`{'Version': '2012-10-17', ...}`), read with [`python_literal`].
pub fn policy_document(raw: &str) -> Value {
    let text = if raw.trim_start().starts_with('%') || raw.contains("%22") {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .unwrap_or_else(|e| panic!("policy document is not UTF-8 once decoded ({e}): {raw}"))
            .into_owned()
    } else {
        raw.to_string()
    };
    if let Ok(v) = serde_json::from_str(&text) {
        return v;
    }
    python_literal(&text)
        .unwrap_or_else(|e| panic!("policy document is neither JSON nor a Python literal ({e}): {raw}"))
}

/// One statement of a policy: its Sid, effect, actions and resources (single values as lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `Sid` (empty when absent).
    pub sid: String,
    /// `Effect`.
    pub effect: String,
    /// `Action`, sorted.
    pub actions: Vec<String>,
    /// `Resource`, sorted.
    pub resources: Vec<String>,
    /// `Condition`, if any.
    pub condition: Option<Value>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().expect("string item").to_string())
            .collect(),
        None => Vec::new(),
        Some(other) => panic!("expected a string or a list of strings, found {other}"),
    };
    out.sort();
    out
}

/// The statements of a policy document.
pub fn statements(policy: &Value) -> Vec<Statement> {
    let list = match &policy["Statement"] {
        Value::Array(items) => items.clone(),
        single @ Value::Object(_) => vec![single.clone()],
        other => panic!("policy without statements: {other}"),
    };
    list.iter()
        .map(|s| Statement {
            sid: s["Sid"].as_str().unwrap_or_default().to_string(),
            effect: s["Effect"].as_str().unwrap_or_default().to_string(),
            actions: strings(s.get("Action")),
            resources: strings(s.get("Resource")),
            condition: s.get("Condition").cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_zip_is_a_valid_archive() {
        let zip = lambda_zip("bootstrap", b"#!/bin/sh\necho hi\n");
        let path = std::env::temp_dir().join(format!("sosw-tests-{}.zip", std::process::id()));
        std::fs::write(&path, &zip).expect("write zip");
        let check = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n\
                     i = z.getinfo('bootstrap')\nassert z.read(i) == b'#!/bin/sh\\necho hi\\n'\n\
                     assert (i.external_attr >> 16) & 0o777 == 0o755\n";
        let out = Command::new(venv_tool("python"))
            .args(["-c", check])
            .arg(&path)
            .output()
            .expect("run python");
        let _ = std::fs::remove_file(&path);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn policy_documents_from_iam_and_from_moto() {
        let json = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2F%2A%22%7D%5D%7D";
        let repr = "{'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:GetObject', 'Resource': 'arn:aws:s3:::b/*'}]}";
        let expected: Value = serde_json::from_str(json).unwrap();
        assert_eq!(policy_document(json), expected);
        assert_eq!(policy_document(encoded), expected);
        assert_eq!(policy_document(repr), expected);
        // Quotes inside strings and Python's constants, which a text substitution would break.
        let tricky = r#"{'Sid': "it's", 'Allowed': True, 'Denied': False, 'Note': None, 'N': 1.5}"#;
        assert_eq!(
            policy_document(tricky),
            serde_json::json!({"Sid": "it's", "Allowed": true, "Denied": false, "Note": null, "N": 1.5})
        );
        let s = statements(&expected);
        assert_eq!(s[0].actions, vec!["s3:GetObject"]);
        assert_eq!(s[0].resources, vec!["arn:aws:s3:::b/*"]);
    }
}
