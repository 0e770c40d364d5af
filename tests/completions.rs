//! `roofline completions SHELL` prints a script the shell accepts, covering every command.

use std::process::Command;

fn completions(shell: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roofline"))
        .args(["completions", shell])
        .output()
        .expect("run roofline");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_shell_gets_a_script_with_every_command_and_option() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = completions(shell);
        assert_eq!(code, 0, "{shell}: {err}");
        for word in [
            "estimate",
            "sweep",
            "search",
            "flash-report",
            "vary",
            "objective",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    // bash parses its script (where bash is installed).
    let (_, script, _) = completions("bash");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roofline.bash");
    std::fs::write(&path, script).unwrap();
    if let Ok(out) = Command::new("bash").arg("-n").arg(&path).output() {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn an_unknown_shell_exits_2_and_lists_the_shells() {
    let (code, _, err) = completions("tcsh");
    assert_eq!(code, 2);
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}
