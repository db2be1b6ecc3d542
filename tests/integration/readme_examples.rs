//! The README's example outputs are what weft prints: every code block preceded by
//! `<!-- checked against the default demo … -->` starts with `$ <command>`; the default demo
//! is generated (through the binary, in a temporary folder beside a link to `dataflows/`), the
//! command runs there, and every line of the block — except `…` lines, which elide — must
//! appear in the command's output, in order.

use std::path::Path;
use std::process::Command;

const MARKER: &str = "<!-- checked against the default demo";

/// `(command, expected lines)` of every checked block.
fn examples(readme: &str) -> Vec<(String, Vec<String>)> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].starts_with(MARKER) {
            assert!(
                lines.get(i + 1).is_some_and(|l| l.starts_with("```")),
                "README line {}: a checked example must be a code block right after the marker",
                i + 1
            );
            let cmd = lines[i + 2]
                .strip_prefix("$ ")
                .unwrap_or_else(|| {
                    panic!(
                        "README line {}: a checked block starts with `$ <command>`",
                        i + 3
                    )
                })
                .to_string();
            let mut expected = Vec::new();
            let mut j = i + 3;
            while !lines[j].starts_with("```") {
                let l = lines[j].trim_end();
                if !l.is_empty() && l.trim() != "…" {
                    expected.push(l.to_string());
                }
                j += 1;
            }
            out.push((cmd, expected));
            i = j;
        }
        i += 1;
    }
    out
}

fn run(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir)
        .args(args)
        .env_remove("WEFT_WAREHOUSE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "weft {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn readme_examples_match_the_default_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let examples = examples(&readme);
    assert!(examples.len() >= 2, "the checked examples were not found");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("dataflows"), dir.path().join("dataflows")).unwrap();
    let demo = run(dir.path(), &["demo"]);
    for (cmd, expected) in examples {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(args[0], "weft", "a checked example runs weft: {cmd}");
        let actual = if args[1..] == ["demo"] {
            demo.clone()
        } else {
            run(dir.path(), &args[1..])
        };
        let mut lines = actual.lines().map(str::trim_end);
        for want in &expected {
            assert!(
                lines.any(|l| l == want),
                "README example `{cmd}`: the line\n  {want}\nis not in the output (in order):\n{actual}"
            );
        }
    }
}
