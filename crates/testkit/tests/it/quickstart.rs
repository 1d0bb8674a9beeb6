//! The README's quickstart script, run for real with curl against a server in this process.

use strongroom_testkit::{contains, TestVault};

#[tokio::test]
async fn quickstart_script_passes_and_leaves_no_plaintext() {
    for tool in ["curl", "jq", "bash"] {
        let found = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "the quickstart needs {tool}: apt-get install -y {tool}"
        );
    }
    let v = TestVault::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart.sh");
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .env("STRONGROOM_URL", &v.base)
        .env("STRONGROOM_TOKEN", &v.operator)
        .env("STRONGROOM_CACERT", v.data_path().join("tls/cert.pem"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "quickstart failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Quickstart passed"), "{stdout}");
    for (path, bytes) in v.scan_files() {
        assert!(
            !contains(&bytes, b"ada.lovelace"),
            "plaintext in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, b"Lovelace"),
            "plaintext in {}",
            path.display()
        );
    }
}

#[tokio::test]
async fn quickstart_script_fails_when_a_step_misbehaves() {
    let v = TestVault::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/quickstart.sh");
    // A token that is not the operator's: the very first authenticated step must fail.
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .env("STRONGROOM_URL", &v.base)
        .env(
            "STRONGROOM_TOKEN",
            "srk_0000000000000000000000000000000000000000000000000000000000000000",
        )
        .env("STRONGROOM_CACERT", v.data_path().join("tls/cert.pem"))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected HTTP 201, got 401"), "{err}");
}
