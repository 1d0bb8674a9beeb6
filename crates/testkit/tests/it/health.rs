//! Health that tells the truth: with the disk full every request fails closed, `/readyz`
//! answers 503 `not_ready` so a load balancer takes the node out, `/healthz` (liveness) stays
//! 200, and readiness comes back when space does.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use strongroom_testkit::TestVault;

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    /// Removed after the unmount (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "the disk-full test must run in CI (it mounts a tmpfs as root)"
            );
            eprintln!("\n*** SKIPPING the disk-full test: cannot mount a tmpfs (needs root) ***\n");
            return None;
        }
        Some(Self {
            path: dir.path().to_owned(),
            _dir: dir,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn readyz_fails_while_the_disk_is_full_and_healthz_stays_up() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let v = TestVault::start_in(disk.path(), Default::default()).await;
    let (_, app) = v.scenario("acme").await;
    let ready = v.get("/readyz", "", None).await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );

    // Fill the disk with a ballast file, then the database's last free pages.
    let ballast = disk.path().join("ballast");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&ballast).unwrap();
        let chunk = vec![0u8; 256 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    let mut refused = None;
    for i in 0..5000 {
        let r = v
            .post(
                "/v1/collections/people/records",
                &app,
                Some("support"),
                json!({"fields": {"email": format!("p{i}@example.com"), "name": "x".repeat(2000)}}),
            )
            .await;
        if r.status != 201 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the disk filled up");
    assert!(
        refused.status == 503 && ["audit_unavailable", "unavailable"].contains(&refused.code()),
        "fails closed: {}",
        refused.text
    );
    v.clock.advance_ms(1_000);
    let ready = v.get("/readyz", "", None).await;
    assert_eq!(
        (ready.status, ready.code()),
        (503, "not_ready"),
        "{}",
        ready.text
    );
    assert_eq!(
        v.get("/healthz", "", None).await.status,
        200,
        "liveness stays"
    );

    // Space comes back, and so does readiness.
    std::fs::remove_file(&ballast).unwrap();
    v.clock.advance_ms(1_000);
    let ready = v.get("/readyz", "", None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    let r = v
        .post(
            "/v1/collections/people/records",
            &app,
            Some("support"),
            json!({"fields": {"email": "back@example.com"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    drop(v);
}
