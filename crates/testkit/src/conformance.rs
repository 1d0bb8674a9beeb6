//! The `Store` conformance suite. Every backend runs all of it through [`store_conformance!`]:
//! atomic units, group commit without gaps, tenant scoping, versioned updates, blind-index
//! lookups, audit filters. A backend that passes can replace another without changes to `core`.

use std::collections::BTreeMap;
use std::sync::Arc;

use strongroom_core::audit::{AuditEvent, PLATFORM_LOG};
use strongroom_core::ids::{ApiKeyId, RecordId, RequestId, SubjectId, TenantId};
use strongroom_core::store::*;
use strongroom_core::OsRng;
use strongroom_proto::{CollectionDef, RoleDef};

/// Generates one `#[tokio::test]` per conformance check. `$factory` is an async fn returning
/// `Option<(Arc<dyn Store>, guard)>`; the guard keeps the backend's resources alive for the
/// test, and `None` means the backend is not available here (the factory says so loudly).
#[macro_export]
macro_rules! store_conformance {
    ($factory:path) => {
        $crate::store_conformance!(@each $factory;
            unit_is_atomic,
            failed_unit_leaves_batch_mates_alone,
            concurrent_units_form_one_gapless_chain,
            queries_are_tenant_scoped,
            updates_keep_history_and_check_versions,
            reindex_replaces_index_entries,
            audit_filters_and_pages,
            audit_filters_match_the_bodies_exactly,
            audit_proofs_come_from_stored_nodes,
            definitions_keys_and_meta_round_trip,
            identity_ops_are_atomic_and_conditional,
            register_versions_are_never_rewritten,
            jobs_are_leased_to_one_holder_at_a_time,
            subject_flags_are_read_with_every_record,
            consents_are_numbered_in_order_and_go_with_the_subject,
            exports_are_taken_as_often_as_allowed_and_go_with_the_subject,
            units_commit_while_the_files_are_scrubbed,
            a_tenant_is_shredded_whole_and_its_archive_taken_once
        );
    };
    (@each $factory:path; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((store, _guard)) = $factory().await else { return };
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

fn tenant(name: &str) -> TenantRow {
    TenantRow {
        id: TenantId::generate(&OsRng),
        name: name.into(),
        created_at: 1,
    }
}

fn event(tenant: Option<&TenantId>, action: &'static str) -> AuditEvent {
    AuditEvent::new(
        tenant.cloned(),
        1,
        RequestId::generate(&OsRng),
        "key:test".into(),
        action,
    )
}

fn subject(t: &TenantId, ref_index: Option<[u8; 32]>) -> SubjectRow {
    SubjectRow {
        tenant: t.clone(),
        id: SubjectId::generate(&OsRng),
        kek_version: 1,
        wrapped_dek: vec![1, 2, 3],
        ref_index,
        created_at: 1,
        flags: 0,
    }
}

fn record(t: &TenantId, s: &SubjectId, data: &[u8]) -> RecordRow {
    RecordRow {
        tenant: t.clone(),
        collection: "people".into(),
        id: RecordId::generate(&OsRng),
        subject: s.clone(),
        version: 1,
        state: RecordState::Active,
        created_at: 1,
        updated_at: 1,
        data: data.to_vec(),
        subject_flags: 0,
    }
}

/// A tenant with one subject, committed.
async fn setup(store: &Arc<dyn Store>, name: &str) -> (TenantId, SubjectId) {
    let t = tenant(name);
    let s = subject(&t.id, None);
    let ids = (t.id.clone(), s.id.clone());
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertTenant(t), Op::InsertSubject(s)],
            audit: vec![],
        })
        .await
        .unwrap();
    ids
}

async fn all_entries(store: &Arc<dyn Store>, log: &str) -> Vec<strongroom_proto::AuditEntry> {
    let mut out = Vec::new();
    let mut q = AuditQuery {
        limit: 1000,
        ..Default::default()
    };
    loop {
        let page = store.find_audit_entries(log, &q).await.unwrap();
        let Some(last) = page.last() else { break };
        q.after_seq = last.seq;
        out.extend(page);
    }
    out
}

/// Checks a log with the production verifier (entries, head, subject index, stored nodes).
pub async fn verify_log(store: &Arc<dyn Store>, log: &str) {
    let summary = strongroom_server::audit_tools::verify_log(store.as_ref(), log, &[0; 32])
        .await
        .unwrap_or_else(|e| panic!("log {log} does not verify: {e}"));
    assert!(summary.entries > 0);
}

pub async fn unit_is_atomic(store: Arc<dyn Store>) {
    let a = tenant("alpha");
    let mut dup = tenant("alpha");
    dup.id = TenantId::generate(&OsRng);
    let unit = UnitOfWork {
        ops: vec![Op::InsertTenant(a.clone()), Op::InsertTenant(dup)],
        audit: vec![event(None, "tenant.create")],
    };
    assert_eq!(
        store.commit(unit).await,
        Err(StoreError::Conflict("tenant"))
    );
    assert_eq!(
        store.find_tenant(&a.id).await.unwrap(),
        None,
        "first op of a failed unit must not persist"
    );
    assert!(
        all_entries(&store, PLATFORM_LOG).await.is_empty(),
        "a failed unit writes no audit entry"
    );
}

pub async fn failed_unit_leaves_batch_mates_alone(store: Arc<dyn Store>) {
    setup(&store, "taken").await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let name = if i % 2 == 0 {
                format!("t{i}")
            } else {
                "taken".to_owned()
            };
            let t = tenant(&name);
            let unit = UnitOfWork {
                ops: vec![Op::InsertTenant(t.clone())],
                audit: vec![event(None, "tenant.create")],
            };
            (i, t.id, store.commit(unit).await)
        }));
    }
    for task in tasks {
        let (i, id, result) = task.await.unwrap();
        if i % 2 == 0 {
            assert!(result.is_ok(), "unit {i}: {result:?}");
            assert!(store.find_tenant(&id).await.unwrap().is_some());
        } else {
            assert_eq!(result, Err(StoreError::Conflict("tenant")));
        }
    }
    let entries = all_entries(&store, PLATFORM_LOG).await;
    assert_eq!(
        entries.len(),
        30,
        "exactly the successful units are audited"
    );
    verify_log(&store, PLATFORM_LOG).await;
}

pub async fn concurrent_units_form_one_gapless_chain(store: Arc<dyn Store>) {
    let (t, _) = setup(&store, "busy").await;
    let n = 300;
    let mut tasks = Vec::new();
    for i in 0..n {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let log = if i % 3 == 0 { None } else { Some(&t) };
            let unit = UnitOfWork {
                ops: vec![],
                audit: vec![event(log, "record.read")],
            };
            store.commit(unit).await.unwrap()
        }));
    }
    let mut seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for task in tasks {
        for (log, seq) in task.await.unwrap().audit {
            seqs.entry(log).or_default().push(seq);
        }
    }
    for (log, mut s) in seqs {
        s.sort_unstable();
        let expected: Vec<u64> = (1..=s.len() as u64).collect();
        assert_eq!(s, expected, "log {log} has gaps or duplicates");
        let entries = all_entries(&store, &log).await;
        assert_eq!(entries.len(), s.len());
        verify_log(&store, &log).await;
    }
}

pub async fn queries_are_tenant_scoped(store: Arc<dyn Store>) {
    let (a, sa) = setup(&store, "a").await;
    let (b, _) = setup(&store, "b").await;
    let rec = record(&a, &sa, b"sealed");
    let hash = [7u8; 32];
    let index = vec![IndexEntry {
        field: "email".into(),
        hash,
    }];
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertRecord {
                row: rec.clone(),
                index,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store.find_record(&a, "people", &rec.id).await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(
        store.find_record(&b, "people", &rec.id).await.unwrap(),
        None,
        "other tenant"
    );
    assert_eq!(
        store.find_record(&a, "orders", &rec.id).await.unwrap(),
        None,
        "other collection"
    );
    assert_eq!(
        store
            .find_records_by_index(&a, "people", "email", &hash, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .find_records_by_index(&b, "people", "email", &hash, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.find_subject(&b, &sa).await.unwrap().is_none());
    // Matches come back in insertion order, even with equal timestamps.
    let mut ids = vec![rec.id.clone()];
    for _ in 0..5 {
        let r = record(&a, &sa, b"more");
        ids.push(r.id.clone());
        let index = vec![IndexEntry {
            field: "email".into(),
            hash,
        }];
        store
            .commit(UnitOfWork {
                ops: vec![Op::InsertRecord { row: r, index }],
                audit: vec![],
            })
            .await
            .unwrap();
    }
    let found: Vec<RecordId> = store
        .find_records_by_index(&a, "people", "email", &hash, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(found, ids);
    assert_eq!(
        store
            .find_records_by_index(&a, "people", "email", &hash, 2)
            .await
            .unwrap()
            .len(),
        2,
        "limit"
    );
    assert!(store
        .find_record_history(&b, &rec.id)
        .await
        .unwrap()
        .is_empty());
}

pub async fn updates_keep_history_and_check_versions(store: Arc<dyn Store>) {
    let (t, s) = setup(&store, "h").await;
    let v1 = record(&t, &s, b"v1");
    let hash = [9u8; 32];
    let index = vec![IndexEntry {
        field: "email".into(),
        hash,
    }];
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertRecord {
                row: v1.clone(),
                index,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    let v2 = RecordRow {
        version: 2,
        data: b"v2".to_vec(),
        updated_at: 2,
        ..v1.clone()
    };
    store
        .commit(UnitOfWork {
            ops: vec![Op::UpdateRecord {
                row: v2.clone(),
                reindex: vec![],
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    let stale = UnitOfWork {
        ops: vec![Op::UpdateRecord {
            row: v2.clone(),
            reindex: vec![],
        }],
        audit: vec![event(Some(&t), "x")],
    };
    assert_eq!(
        store.commit(stale).await,
        Err(StoreError::Conflict("version"))
    );
    assert_eq!(
        store
            .find_record(&t, "people", &v1.id)
            .await
            .unwrap()
            .unwrap()
            .data,
        b"v2"
    );
    assert_eq!(
        store.find_record_history(&t, &v1.id).await.unwrap(),
        vec![(1, 1, b"v1".to_vec())]
    );

    let block = |v| Op::BlockRecord {
        tenant: t.clone(),
        id: v1.id.clone(),
        expected_version: v,
        at: 3,
    };
    assert_eq!(
        store
            .commit(UnitOfWork {
                ops: vec![block(1)],
                audit: vec![]
            })
            .await,
        Err(StoreError::Conflict("version"))
    );
    store
        .commit(UnitOfWork {
            ops: vec![block(2)],
            audit: vec![],
        })
        .await
        .unwrap();
    let row = store
        .find_record(&t, "people", &v1.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, RecordState::Blocked);
    assert!(
        store
            .find_records_by_index(&t, "people", "email", &hash, 10)
            .await
            .unwrap()
            .is_empty(),
        "blocked records are not found"
    );
    assert_eq!(
        store
            .commit(UnitOfWork {
                ops: vec![block(2)],
                audit: vec![]
            })
            .await,
        Err(StoreError::Conflict("version")),
        "blocking twice"
    );
}

pub async fn reindex_replaces_index_entries(store: Arc<dyn Store>) {
    let (t, s) = setup(&store, "ix").await;
    let v1 = record(&t, &s, b"v1");
    let (old, new) = ([1u8; 32], [2u8; 32]);
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertRecord {
                row: v1.clone(),
                index: vec![IndexEntry {
                    field: "email".into(),
                    hash: old,
                }],
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    let v2 = RecordRow {
        version: 2,
        ..v1.clone()
    };
    store
        .commit(UnitOfWork {
            ops: vec![Op::UpdateRecord {
                row: v2,
                reindex: vec![("email".into(), Some(new))],
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert!(store
        .find_records_by_index(&t, "people", "email", &old, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .find_records_by_index(&t, "people", "email", &new, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let v3 = RecordRow {
        version: 3,
        ..v1.clone()
    };
    store
        .commit(UnitOfWork {
            ops: vec![Op::UpdateRecord {
                row: v3,
                reindex: vec![("email".into(), None)],
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert!(
        store
            .find_records_by_index(&t, "people", "email", &new, 10)
            .await
            .unwrap()
            .is_empty(),
        "cleared field leaves the index"
    );
}

pub async fn audit_filters_and_pages(store: Arc<dyn Store>) {
    let (t, s) = setup(&store, "au").await;
    let mut events = Vec::new();
    for i in 0..10 {
        let mut e = event(
            Some(&t),
            if i % 2 == 0 {
                "record.read"
            } else {
                "record.create"
            },
        );
        e.time = 100 + i;
        if i == 3 {
            e.subject = Some(s.clone());
            e.outcome = strongroom_core::audit::Outcome::Denied;
        }
        events.push(e);
    }
    store
        .commit(UnitOfWork {
            ops: vec![],
            audit: events,
        })
        .await
        .unwrap();
    let log = t.to_string();
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let reads = store
        .find_audit_entries(&log, &q(|q| q.action = Some("record.read".into())))
        .await
        .unwrap();
    assert_eq!(reads.len(), 5);
    assert!(reads.iter().all(|e| e.action == "record.read"));
    let denied = store
        .find_audit_entries(&log, &q(|q| q.outcome = Some("denied".into())))
        .await
        .unwrap();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].subject.as_deref(), Some(s.as_str()));
    let by_subject = store
        .find_audit_entries(&log, &q(|q| q.subject = Some("nobody".into())))
        .await
        .unwrap();
    assert!(by_subject.is_empty());
    let window = store
        .find_audit_entries(
            &log,
            &q(|q| {
                q.from_ms = Some(102);
                q.to_ms = Some(105);
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|e| e.time).collect::<Vec<_>>(),
        vec![102, 103, 104]
    );
    let page = store
        .find_audit_entries(
            &log,
            &AuditQuery {
                after_seq: 8,
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![9, 10]);
    let first = store
        .find_audit_entries(
            &log,
            &AuditQuery {
                limit: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert!(
        store
            .find_audit_entries("ten_other", &q(|_| {}))
            .await
            .unwrap()
            .is_empty(),
        "logs are separate"
    );
}

type EntryFilter = Box<dyn Fn(&strongroom_proto::AuditEntry) -> bool>;

/// Every filter returns exactly the entries whose hashed bodies match it, in order, across
/// pages — whatever mix of actors, actions, outcomes, collections, subjects (own or named among
/// objects) and times the log holds.
pub async fn audit_filters_match_the_bodies_exactly(store: Arc<dyn Store>) {
    let (t, _) = setup(&store, "filters").await;
    let subjects: Vec<SubjectId> = (0..4).map(|_| SubjectId::generate(&OsRng)).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let actions = ["record.read", "record.search", "record.create"];
    for i in 0..240u64 {
        let mut ev = event(Some(&t), actions[next(3) as usize]);
        ev.time = 1_000 + i as i64 * 10;
        ev.actor = format!("key:k{}", next(3));
        ev.outcome = [
            strongroom_core::audit::Outcome::Ok,
            strongroom_core::audit::Outcome::Denied,
            strongroom_core::audit::Outcome::Failed,
        ][next(3) as usize];
        ev.collection = (next(3) > 0).then(|| format!("c{}", next(2)));
        match next(3) {
            0 => ev.subject = Some(subjects[next(4) as usize].clone()),
            1 => {
                ev.objects = vec![
                    subjects[next(4) as usize].to_string(),
                    subjects[next(4) as usize].to_string(),
                    "key_x".into(),
                ]
            }
            _ => {}
        }
        store
            .commit(UnitOfWork {
                ops: vec![],
                audit: vec![ev],
            })
            .await
            .unwrap();
    }
    let all = all_entries(&store, t.as_str()).await;
    let mut filters: Vec<(AuditQuery, EntryFilter)> = Vec::new();
    for a in actions {
        filters.push((
            AuditQuery {
                action: Some(a.into()),
                ..Default::default()
            },
            Box::new(move |e| e.action == a),
        ));
    }
    for o in ["ok", "denied", "failed"] {
        filters.push((
            AuditQuery {
                outcome: Some(o.into()),
                ..Default::default()
            },
            Box::new(move |e| e.outcome == o),
        ));
    }
    for k in 0..3 {
        let actor = format!("key:k{k}");
        let a2 = actor.clone();
        filters.push((
            AuditQuery {
                actor: Some(actor),
                ..Default::default()
            },
            Box::new(move |e| e.actor == a2),
        ));
    }
    for c in ["c0", "c1"] {
        filters.push((
            AuditQuery {
                collection: Some(c.into()),
                ..Default::default()
            },
            Box::new(move |e| e.collection.as_deref() == Some(c)),
        ));
    }
    for s in &subjects {
        let id = s.to_string();
        let id2 = id.clone();
        filters.push((
            AuditQuery {
                subject: Some(id),
                ..Default::default()
            },
            Box::new(move |e| e.subject.as_deref() == Some(&id2) || e.objects.contains(&id2)),
        ));
    }
    filters.push((
        AuditQuery {
            from_ms: Some(1_500),
            to_ms: Some(2_000),
            outcome: Some("ok".into()),
            ..Default::default()
        },
        Box::new(|e| (1_500..2_000).contains(&e.time) && e.outcome == "ok"),
    ));
    for (mut q, matches) in filters {
        let expected: Vec<u64> = all.iter().filter(|e| matches(e)).map(|e| e.seq).collect();
        let mut got = Vec::new();
        q.limit = 7;
        loop {
            let page = store.find_audit_entries(t.as_str(), &q).await.unwrap();
            let Some(last) = page.last() else { break };
            q.after_seq = last.seq;
            got.extend(page.iter().map(|e| e.seq));
        }
        assert!(!expected.is_empty(), "{q:?} matches something");
        assert_eq!(got, expected, "{q:?}");
    }
    verify_log(&store, t.as_str()).await;
}

/// Proofs built from the stored nodes equal the reference computed from every leaf, at sizes
/// around the stored levels.
pub async fn audit_proofs_come_from_stored_nodes(store: Arc<dyn Store>) {
    use strongroom_crypto::merkle;
    let (t, _) = setup(&store, "proofs").await;
    let log = t.as_str();
    let unit = || UnitOfWork {
        ops: vec![],
        audit: (0..100).map(|_| event(Some(&t), "record.read")).collect(),
    };
    for _ in 0..6 {
        store.commit(unit()).await.unwrap();
    }
    let size = store.find_audit_head(log).await.unwrap().unwrap().size;
    let leaves = store.find_audit_hashes(log, 0, 0, size).await.unwrap();
    assert_eq!(leaves.len() as u64, size);
    for n in [1, 2, 255, 256, 257, 300, 511, 512, size] {
        let root = strongroom_core::proofs::root(store.as_ref(), log, n)
            .await
            .unwrap();
        assert_eq!(root, merkle::root(&leaves[..n as usize]), "root of {n}");
        for index in [0, n / 2, n - 1] {
            let ranges = merkle::inclusion_ranges(index, n);
            let proof = strongroom_core::proofs::range_hashes(store.as_ref(), log, &ranges)
                .await
                .unwrap();
            assert_eq!(
                Some(proof),
                merkle::inclusion_proof(&leaves[..n as usize], index as usize)
            );
        }
        for old in [1, n / 3 + 1, n] {
            let ranges = merkle::consistency_ranges(old, n);
            let proof = strongroom_core::proofs::range_hashes(store.as_ref(), log, &ranges)
                .await
                .unwrap();
            assert_eq!(
                Some(proof),
                merkle::consistency_proof(&leaves[..n as usize], old as usize)
            );
        }
    }
}

pub async fn definitions_keys_and_meta_round_trip(store: Arc<dyn Store>) {
    let (t, _) = setup(&store, "defs").await;
    let def: CollectionDef = serde_json::from_value(crate::people_schema()).unwrap();
    let row = |version| CollectionRow {
        tenant: t.clone(),
        name: "people".into(),
        version,
        def: def.clone(),
        updated_at: 1,
    };
    store
        .commit(UnitOfWork {
            ops: vec![Op::PutCollection {
                row: row(1),
                expected_version: 0,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .commit(UnitOfWork {
                ops: vec![Op::PutCollection {
                    row: row(1),
                    expected_version: 0
                }],
                audit: vec![]
            })
            .await,
        Err(StoreError::Conflict("collection"))
    );
    store
        .commit(UnitOfWork {
            ops: vec![Op::PutCollection {
                row: row(2),
                expected_version: 1,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .commit(UnitOfWork {
                ops: vec![Op::PutCollection {
                    row: row(2),
                    expected_version: 1
                }],
                audit: vec![]
            })
            .await,
        Err(StoreError::Conflict("version"))
    );
    assert_eq!(
        store
            .find_collection(&t, "people")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(store.find_collections(&t).await.unwrap().len(), 1);

    let role_def: RoleDef = serde_json::from_value(crate::support_agent()).unwrap();
    let role = |version: u64| RoleRow {
        tenant: t.clone(),
        name: "agent".into(),
        version,
        def: role_def.clone(),
        updated_at: version as i64,
    };
    let put = |row: RoleRow, expected_version: u64| UnitOfWork {
        ops: vec![Op::PutRole {
            row,
            expected_version,
        }],
        audit: vec![],
    };
    store.commit(put(role(1), 0)).await.unwrap();
    // A second creation, and a replacement of a version that is no longer current, conflict.
    assert_eq!(
        store.commit(put(role(1), 0)).await,
        Err(StoreError::Conflict("role"))
    );
    store.commit(put(role(2), 1)).await.unwrap();
    assert_eq!(
        store.commit(put(role(2), 1)).await,
        Err(StoreError::Conflict("version"))
    );
    let found = store.find_role(&t, "agent").await.unwrap().unwrap();
    assert_eq!(
        (found.version, found.updated_at),
        (2, 2),
        "roles are replaced"
    );
    assert_eq!(store.find_roles(&t).await.unwrap().len(), 1);

    let key = ApiKeyRow {
        id: ApiKeyId::generate(&OsRng),
        tenant: Some(t.clone()),
        name: "k".into(),
        hash: [4; 32],
        roles: vec!["agent".into()],
        created_at: 1,
        expires_at: 2,
        last_used_at: None,
        rotated_to: None,
    };
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertApiKey(key.clone())],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store.find_api_key_by_hash(&[4; 32]).await.unwrap(),
        Some(key)
    );
    assert_eq!(store.find_api_key_by_hash(&[5; 32]).await.unwrap(), None);

    store
        .commit(UnitOfWork {
            ops: vec![Op::PutMeta {
                key: "k".into(),
                value: "v".into(),
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));

    let reference = [3u8; 32];
    let s1 = subject(&t, Some(reference));
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertSubject(s1.clone())],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store.find_subject_by_ref(&t, &reference).await.unwrap(),
        Some(s1)
    );
    let s2 = subject(&t, Some(reference));
    assert_eq!(
        store
            .commit(UnitOfWork {
                ops: vec![Op::InsertSubject(s2)],
                audit: vec![]
            })
            .await,
        Err(StoreError::Conflict("data subject")),
        "a subject reference is unique within its tenant"
    );
}

pub async fn identity_ops_are_atomic_and_conditional(store: Arc<dyn Store>) {
    use strongroom_core::ids::{SessionId, UserId};
    let (t, _) = setup(&store, "ident").await;
    let user = UserRow {
        id: UserId::generate(&OsRng),
        tenant: Some(t.clone()),
        username: "Grace".into(),
        username_key: "grace".into(),
        password_hash: "$argon2id$x".into(),
        password_changed_at: 1,
        password_history: vec![],
        roles: vec!["agent".into()],
        disabled: false,
        failed_count: 0,
        lock_level: 0,
        locked_until: None,
        totp_secret: None,
        totp_pending: None,
        totp_last_step: 0,
        recovery_codes: vec![[9; 32]],
        created_at: 1,
        version: 1,
    };
    let commit = |ops: Vec<Op>| {
        let store = store.clone();
        async move { store.commit(UnitOfWork { ops, audit: vec![] }).await }
    };
    commit(vec![Op::InsertUser(user.clone())]).await.unwrap();
    let mut twin = user.clone();
    twin.id = UserId::generate(&OsRng);
    assert_eq!(
        commit(vec![Op::InsertUser(twin)]).await,
        Err(StoreError::Conflict("user")),
        "username unique per tenant"
    );
    let get = || {
        let store = store.clone();
        let (t, id) = (t.clone(), user.id.clone());
        async move { store.find_user(Some(&t), &id).await.unwrap().unwrap() }
    };
    assert_eq!(get().await, user);
    assert_eq!(
        store
            .find_user_by_name(Some(&t), "grace")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(user.id.clone())
    );
    assert!(
        store.find_user(None, &user.id).await.unwrap().is_none(),
        "scoped to its tenant"
    );

    let admit = |at| Op::AdmitLoginAttempt {
        user: user.id.clone(),
        at,
        threshold: 3,
    };
    let lock = |at| Op::LockIfDue {
        user: user.id.clone(),
        at,
        threshold: 3,
        base_delay_ms: 60_000,
        max_delay_ms: 3_600_000,
    };
    // Three checks are admitted, the fourth is not, whatever their outcome.
    commit(vec![admit(10), admit(10)]).await.unwrap();
    assert_eq!(
        commit(vec![lock(11)]).await,
        Err(StoreError::Conflict("not_due")),
        "two failures do not lock"
    );
    commit(vec![admit(12)]).await.unwrap();
    assert_eq!(
        commit(vec![admit(12)]).await,
        Err(StoreError::Conflict("locked")),
        "no more than the threshold of checks is admitted"
    );
    // A given-back check frees its place.
    commit(vec![Op::ReleaseLoginAttempt {
        user: user.id.clone(),
    }])
    .await
    .unwrap();
    commit(vec![admit(12)]).await.unwrap();
    commit(vec![lock(12)]).await.unwrap();
    let locked = get().await;
    assert_eq!(
        (locked.failed_count, locked.lock_level, locked.locked_until),
        (0, 1, Some(60_012)),
        "locked at the threshold"
    );
    assert_eq!(
        commit(vec![lock(13)]).await,
        Err(StoreError::Conflict("not_due")),
        "one lock per threshold of failures"
    );
    assert_eq!(
        commit(vec![admit(60_011)]).await,
        Err(StoreError::Conflict("locked")),
        "nothing is admitted while locked"
    );
    commit(vec![admit(70_000), admit(70_001), admit(70_002)])
        .await
        .unwrap();
    commit(vec![lock(70_002)]).await.unwrap();
    assert_eq!(
        get().await.locked_until,
        Some(70_002 + 120_000),
        "the next lock is twice as long"
    );
    // Concurrent admissions: exactly the threshold gets in.
    commit(vec![Op::ResetLockout {
        user: user.id.clone(),
    }])
    .await
    .unwrap();
    let racers: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            let op = admit(200_000);
            tokio::spawn(async move {
                store
                    .commit(UnitOfWork {
                        ops: vec![op],
                        audit: vec![],
                    })
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut admitted = 0;
    for r in racers {
        admitted += usize::from(r.await.unwrap());
    }
    assert_eq!(
        admitted, 3,
        "exactly the threshold admitted among 40 at once"
    );
    commit(vec![Op::ResetLockout {
        user: user.id.clone(),
    }])
    .await
    .unwrap();
    let reset = get().await;
    assert_eq!(
        (reset.failed_count, reset.lock_level, reset.locked_until),
        (0, 0, None)
    );

    let step = |s| Op::UseTotpStep {
        user: user.id.clone(),
        step: s,
    };
    commit(vec![step(5)]).await.unwrap();
    assert_eq!(
        commit(vec![step(5)]).await,
        Err(StoreError::Conflict("totp step")),
        "a step is accepted once"
    );
    assert_eq!(
        commit(vec![step(4)]).await,
        Err(StoreError::Conflict("totp step"))
    );
    commit(vec![step(6)]).await.unwrap();

    let mut next = get().await;
    next.roles = vec!["admin".into()];
    next.version += 1;
    commit(vec![Op::UpdateUser(next.clone())]).await.unwrap();
    assert_eq!(
        commit(vec![Op::UpdateUser(next.clone())]).await,
        Err(StoreError::Conflict("version")),
        "stale update"
    );
    assert_eq!(
        get().await.totp_last_step,
        6,
        "updates leave the TOTP step alone"
    );

    let session = SessionRow {
        id: SessionId::generate(&OsRng),
        token_hash: [8; 32],
        tenant: Some(t.clone()),
        user: user.id.clone(),
        created_at: 1,
        last_seen_at: 1,
        expires_at: 100,
        idle_timeout_ms: 10,
        revoked_at: None,
        restricted_to: Some("mfa_enrollment".into()),
    };
    commit(vec![
        Op::InsertSession(session.clone()),
        Op::TouchSession {
            id: session.id.clone(),
            at: 5,
        },
    ])
    .await
    .unwrap();
    let found = store.find_session_by_hash(&[8; 32]).await.unwrap().unwrap();
    assert_eq!(
        (found.last_seen_at, found.restricted_to.as_deref()),
        (5, Some("mfa_enrollment"))
    );
    commit(vec![Op::TouchSession {
        id: session.id.clone(),
        at: 3,
    }])
    .await
    .unwrap();
    assert_eq!(
        store
            .find_session_by_hash(&[8; 32])
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        5,
        "never moves back"
    );
    commit(vec![Op::RevokeUserSessions {
        user: user.id.clone(),
        at: 7,
    }])
    .await
    .unwrap();
    assert_eq!(
        store
            .find_session_by_hash(&[8; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(7)
    );

    let settings = strongroom_proto::SecuritySettings {
        lockout_threshold: Some(5),
        ..Default::default()
    };
    commit(vec![Op::PutSettings {
        scope: t.to_string(),
        settings: settings.clone(),
    }])
    .await
    .unwrap();
    assert_eq!(
        store.find_settings(t.as_str()).await.unwrap(),
        Some(settings)
    );
    assert_eq!(store.find_settings("platform").await.unwrap(), None);
}

/// A writer `Faults` that panics at the next commit once `armed` is set (and disarms itself).
pub fn panic_once(armed: Arc<std::sync::atomic::AtomicBool>) -> Faults {
    Faults::new(move |point| {
        if point == FaultPoint::BeforeCommit
            && armed.swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("injected fault: the writer dies before COMMIT");
        }
    })
}

/// A writer that dies fails the batch it held — nothing of it lands — and a new writer takes
/// every later unit, with the log's chain intact. Run with a store built with [`panic_once`].
pub async fn a_dead_writer_is_replaced(
    store: Arc<dyn Store>,
    armed: Arc<std::sync::atomic::AtomicBool>,
) {
    let (t, _) = setup(&store, "before").await;
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let doomed = tenant("doomed");
    let unit = UnitOfWork {
        ops: vec![Op::InsertTenant(doomed.clone())],
        audit: vec![event(None, "tenant.create")],
    };
    assert!(
        matches!(store.commit(unit).await, Err(StoreError::Unavailable(_))),
        "the unit of a dead writer's batch must fail"
    );
    assert_eq!(store.find_tenant(&doomed.id).await.unwrap(), None);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let unit = UnitOfWork {
                ops: vec![Op::InsertTenant(tenant(&format!("after{i}")))],
                audit: vec![event(None, "tenant.create")],
            };
            store.commit(unit).await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("a new writer takes the units");
    }
    assert!(store.find_tenant(&t).await.unwrap().is_some());
    let entries = all_entries(&store, PLATFORM_LOG).await;
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == "tenant.create")
            .count(),
        20,
        "one entry for each later unit, none for the failed one"
    );
    verify_log(&store, PLATFORM_LOG).await;
}

/// Register entries are versions: a version number is written once, the next one only after
/// it, scopes never mix, and every version stays readable.
pub async fn register_versions_are_never_rewritten(store: Arc<dyn Store>) {
    let (t, _) = setup(&store, "acme").await;
    let row = |version: u32, tenant: Option<&TenantId>| DeclarationRow {
        // Ids are random and never shared between scopes.
        id: if tenant.is_some() {
            "dcl_00000000000000000000000000000001".into()
        } else {
            "dcl_00000000000000000000000000000002".into()
        },
        version,
        tenant: tenant.cloned(),
        measure: "OR-07".into(),
        statement: format!("version {version}"),
        owner: "Facilities".into(),
        evidence_name: Some("badge-policy.pdf".into()),
        evidence_sha256: Some([version as u8; 32]),
        declared_at: 10,
        review_by: 20,
        withdrawn: version == 3,
        recorded_by: "key:test".into(),
        recorded_at: i64::from(version),
    };
    let put = |r: DeclarationRow| UnitOfWork {
        audit: vec![event(r.tenant.as_ref(), "declaration.create")],
        ops: vec![Op::PutDeclaration(r)],
    };
    store.commit(put(row(1, Some(&t)))).await.unwrap();
    assert_eq!(
        store.commit(put(row(1, Some(&t)))).await,
        Err(StoreError::Conflict("version")),
        "a version is written once"
    );
    store.commit(put(row(2, Some(&t)))).await.unwrap();
    store.commit(put(row(3, Some(&t)))).await.unwrap();
    // The platform's register is another scope.
    store.commit(put(row(1, None))).await.unwrap();
    let mine = store.find_declarations(Some(&t)).await.unwrap();
    assert_eq!(
        mine.iter().map(|d| d.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(mine[1], row(2, Some(&t)));
    assert!(mine[2].withdrawn);
    let platform = store.find_declarations(None).await.unwrap();
    assert_eq!(platform, vec![row(1, None)]);
    let (other, _) = setup(&store, "globex").await;
    assert!(store
        .find_declarations(Some(&other))
        .await
        .unwrap()
        .is_empty());
    // JSON-bodied registers follow the same rule, per register.
    let entry = |version: u32, register: &str| RegisterEntryRow {
        register: register.into(),
        id: "inc_00000000000000000000000000000001".into(),
        version,
        tenant: None,
        body: format!("{{\"v\":{version}}}"),
        recorded_by: "key:test".into(),
        recorded_at: i64::from(version),
    };
    let put = |e: RegisterEntryRow| UnitOfWork {
        ops: vec![Op::PutRegisterEntry(e)],
        audit: vec![event(None, "incident.create")],
    };
    store.commit(put(entry(1, "incidents"))).await.unwrap();
    assert_eq!(
        store.commit(put(entry(1, "incidents"))).await,
        Err(StoreError::Conflict("version"))
    );
    store.commit(put(entry(2, "incidents"))).await.unwrap();
    store.commit(put(entry(1, "trainings"))).await.unwrap();
    let found = store
        .find_register_entries("incidents", None)
        .await
        .unwrap();
    assert_eq!(found, vec![entry(1, "incidents"), entry(2, "incidents")]);
    assert!(store
        .find_register_entries("incidents", Some(&t))
        .await
        .unwrap()
        .is_empty());
}

/// A job's lease goes to one holder at a time, is taken over once expired, fences the batches
/// of a holder that lost it (the whole unit fails), and a takeover resumes the run's progress
/// while a new run starts afresh.
pub async fn jobs_are_leased_to_one_holder_at_a_time(store: Arc<dyn Store>) {
    let commit = |ops: Vec<Op>| {
        let store = store.clone();
        async move { store.commit(UnitOfWork { ops, audit: vec![] }).await }
    };
    let claim = |holder: &str, now: i64| Op::ClaimJob {
        id: "purge".into(),
        holder: holder.into(),
        now,
        until: now + 100,
    };
    let job = JobRow::new("purge", None, 1000, 50);
    commit(vec![Op::EnsureJob(job.clone())]).await.unwrap();
    let mut other = job.clone();
    other.every_ms = 7;
    commit(vec![Op::EnsureJob(other)]).await.unwrap();
    let stored = store.find_job("purge").await.unwrap().unwrap();
    assert_eq!(stored, job, "ensuring an existing job changes nothing");
    assert_eq!(store.find_jobs().await.unwrap().len(), 1);

    // Eight nodes claim at once: one wins.
    let mut claims = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = store.clone();
        let op = claim(&format!("node{i}"), 100);
        claims.spawn(async move {
            let r = store
                .commit(UnitOfWork {
                    ops: vec![op],
                    audit: vec![],
                })
                .await;
            (format!("node{i}"), r.is_ok())
        });
    }
    let won: Vec<String> = claims
        .join_all()
        .await
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(won.len(), 1, "{won:?}");
    let a = won[0].clone();
    let row = store.find_job("purge").await.unwrap().unwrap();
    assert_eq!(
        (
            row.state,
            row.lease_holder.as_deref(),
            row.lease_until,
            row.started_at
        ),
        (JobState::Running, Some(a.as_str()), 200, Some(100))
    );
    // The holder records progress; another node cannot claim before expiry.
    let mut progress = row.clone();
    progress.done = 5;
    progress.total = Some(10);
    progress.cursor = Some("c5".into());
    commit(vec![Op::SaveJob {
        holder: a.clone(),
        row: progress.clone(),
    }])
    .await
    .unwrap();
    assert_eq!(
        commit(vec![claim("late", 150)]).await,
        Err(StoreError::Conflict("lease"))
    );
    // Expired: taken over, progress kept (a resumed run).
    commit(vec![claim("late", 200)]).await.unwrap();
    let row = store.find_job("purge").await.unwrap().unwrap();
    assert_eq!(
        (
            row.lease_holder.as_deref(),
            row.done,
            row.cursor.as_deref(),
            row.started_at
        ),
        (Some("late"), 5, Some("c5"), Some(100))
    );
    // The old holder's next batch is refused as a whole.
    let mut stale = progress.clone();
    stale.done = 6;
    assert_eq!(
        commit(vec![
            Op::PutMeta {
                key: "batch-effect".into(),
                value: "applied".into()
            },
            Op::SaveJob {
                holder: a.clone(),
                row: stale
            },
        ])
        .await,
        Err(StoreError::Conflict("lease"))
    );
    assert_eq!(store.get_meta("batch-effect").await.unwrap(), None);
    // The new holder finishes and releases; the next claim starts a new run.
    let mut done = row.clone();
    done.state = JobState::Idle;
    done.done = 10;
    done.runs = 1;
    done.lease_holder = None;
    done.lease_until = 0;
    done.next_run_at = 1200;
    commit(vec![Op::SaveJob {
        holder: "late".into(),
        row: done,
    }])
    .await
    .unwrap();
    // Not due before 1200: a node that saw it due a moment ago cannot run it again.
    assert_eq!(
        commit(vec![claim("third", 300)]).await,
        Err(StoreError::Conflict("lease"))
    );
    let due_now = Op::ScheduleJob {
        id: "purge".into(),
        every_ms: 1000,
        next_run_at: 300,
    };
    commit(vec![due_now]).await.unwrap();
    commit(vec![claim("third", 300)]).await.unwrap();
    let row = store.find_job("purge").await.unwrap().unwrap();
    assert_eq!(
        (
            row.done,
            row.total,
            row.cursor.as_deref(),
            row.started_at,
            row.runs
        ),
        (0, None, None, Some(300), 1)
    );
    // A schedule moves the next run earlier, never later.
    commit(vec![Op::ScheduleJob {
        id: "purge".into(),
        every_ms: 500,
        next_run_at: 2000,
    }])
    .await
    .unwrap();
    assert_eq!(
        store.find_job("purge").await.unwrap().unwrap().next_run_at,
        300
    );
    commit(vec![Op::ScheduleJob {
        id: "purge".into(),
        every_ms: 500,
        next_run_at: 200,
    }])
    .await
    .unwrap();
    let row = store.find_job("purge").await.unwrap().unwrap();
    assert_eq!((row.next_run_at, row.every_ms), (200, 500));
}

/// A subject's flag, set and cleared, is what every read of its records and of the subject
/// returns at once (no cache in the store), of that subject only and in that tenant only; the
/// restricted list has it; a flag on a subject that is gone is a conflict and changes nothing.
pub async fn subject_flags_are_read_with_every_record(store: Arc<dyn Store>) {
    use strongroom_core::store::SUBJECT_RESTRICTED;
    let (t, s) = setup(&store, "acme").await;
    let (t2, s2) = setup(&store, "other").await;
    let rec = record(&t, &s, b"a");
    let rec2 = record(&t2, &s2, b"b");
    let hash = [7u8; 32];
    let ix = || {
        vec![IndexEntry {
            field: "email".into(),
            hash,
        }]
    };
    store
        .commit(UnitOfWork {
            ops: vec![
                Op::InsertRecord {
                    row: rec.clone(),
                    index: ix(),
                },
                Op::InsertRecord {
                    row: rec2.clone(),
                    index: ix(),
                },
            ],
            audit: vec![],
        })
        .await
        .unwrap();
    let flag = |on: bool, t: &TenantId, s: &SubjectId| Op::SetSubjectFlag {
        tenant: t.clone(),
        subject: s.clone(),
        flag: SUBJECT_RESTRICTED,
        on,
    };
    let seen = |store: Arc<dyn Store>, t: TenantId, s: SubjectId, id: RecordId| async move {
        let by_id = store
            .find_record(&t, "people", &id)
            .await
            .unwrap()
            .unwrap()
            .subject_flags;
        let by_index = store
            .find_records_by_index(&t, "people", "email", &hash, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.subject_flags)
            .collect::<Vec<_>>();
        let subject = store.find_subject(&t, &s).await.unwrap().unwrap().flags;
        let listed = store
            .find_restricted_subjects(&t)
            .await
            .unwrap()
            .contains(&s);
        (by_id, by_index, subject, listed)
    };
    for _ in 0..2 {
        store
            .commit(UnitOfWork {
                ops: vec![flag(true, &t, &s)],
                audit: vec![],
            })
            .await
            .unwrap();
        assert_eq!(
            seen(store.clone(), t.clone(), s.clone(), rec.id.clone()).await,
            (1, vec![1], 1, true),
            "setting twice is setting once"
        );
    }
    assert_eq!(
        seen(store.clone(), t2.clone(), s2.clone(), rec2.id.clone()).await,
        (0, vec![0], 0, false),
        "the other tenant's subject is untouched"
    );
    // Another tenant cannot flag this tenant's subject (nor anything else with it).
    let r = store
        .commit(UnitOfWork {
            ops: vec![flag(false, &t2, &s), flag(true, &t2, &s2)],
            audit: vec![],
        })
        .await;
    assert!(matches!(r, Err(StoreError::Conflict("subject"))), "{r:?}");
    assert_eq!(
        seen(store.clone(), t2.clone(), s2.clone(), rec2.id.clone())
            .await
            .0,
        0
    );
    assert_eq!(
        seen(store.clone(), t.clone(), s.clone(), rec.id.clone())
            .await
            .0,
        1
    );
    store
        .commit(UnitOfWork {
            ops: vec![flag(false, &t, &s)],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        seen(store.clone(), t.clone(), s.clone(), rec.id.clone()).await,
        (0, vec![0], 0, false)
    );
}

/// The consent register: changes numbered one after the other per subject and purpose (also
/// when written at the same time), none for a subject that is gone (nothing written), an
/// objection flags the subject, and the register goes with the subject's erasure.
pub async fn consents_are_numbered_in_order_and_go_with_the_subject(store: Arc<dyn Store>) {
    use strongroom_core::store::{ConsentRow, ConsentState, SUBJECT_OBJECTED};
    let (t, s) = setup(&store, "acme").await;
    let change = |s: &SubjectId, purpose: &str, state: ConsentState| ConsentRow {
        tenant: t.clone(),
        subject: s.clone(),
        purpose: purpose.into(),
        seq: 99,
        state,
        at: 5,
        source: "form v1".into(),
        text_hash: Some([3; 32]),
        recorded_by: "key:test".into(),
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let row = change(
            &s,
            "news",
            if i % 2 == 0 {
                ConsentState::Given
            } else {
                ConsentState::Withdrawn
            },
        );
        tasks.push(tokio::spawn(async move {
            store
                .commit(UnitOfWork {
                    ops: vec![Op::RecordConsent(row)],
                    audit: vec![],
                })
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let all = store.find_consents(&t, &s).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>(),
        "numbered without gaps or doubles"
    );
    let latest = store.find_consent(&t, &s, "news").await.unwrap().unwrap();
    assert_eq!(latest.seq, 8);
    // Read with a record in one statement: the state in force, for that purpose only.
    let rec = record(&t, &s, b"r");
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertRecord {
                row: rec.clone(),
                index: vec![],
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    let (row, state) = store
        .find_record_consent(&t, "people", &rec.id, "news")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.id, state), (rec.id.clone(), Some(latest.state)));
    let (_, none) = store
        .find_record_consent(&t, "people", &rec.id, "other")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none, None);
    assert_eq!(latest.text_hash, Some([3; 32]));
    assert!(store.find_consent(&t, &s, "other").await.unwrap().is_none());
    // Another tenant's view of the same subject id: nothing.
    let (t2, _) = setup(&store, "other").await;
    assert!(store.find_consents(&t2, &s).await.unwrap().is_empty());
    // A subject that is not there (or another tenant's): nothing written, with the unit.
    let ghost = SubjectId::generate(&OsRng);
    let mut foreign = change(&s, "news", ConsentState::Given);
    foreign.tenant = t2.clone();
    for row in [change(&ghost, "news", ConsentState::Given), foreign] {
        let r = store
            .commit(UnitOfWork {
                ops: vec![
                    Op::RecordConsent(change(&s, "x", ConsentState::Given)),
                    Op::RecordConsent(row),
                ],
                audit: vec![],
            })
            .await;
        assert!(matches!(r, Err(StoreError::Conflict("subject"))), "{r:?}");
    }
    assert!(
        store.find_consent(&t, &s, "x").await.unwrap().is_none(),
        "the unit was undone"
    );
    // An objection flags the subject.
    assert_eq!(
        store.find_subject(&t, &s).await.unwrap().unwrap().flags & SUBJECT_OBJECTED,
        0
    );
    store
        .commit(UnitOfWork {
            ops: vec![Op::RecordConsent(change(
                &s,
                "outreach",
                ConsentState::Objected,
            ))],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        store.find_subject(&t, &s).await.unwrap().unwrap().flags & SUBJECT_OBJECTED,
        SUBJECT_OBJECTED
    );
    // The register goes with the subject.
    store
        .commit(UnitOfWork {
            ops: vec![Op::EraseSubject {
                tenant: t.clone(),
                subject: s.clone(),
                records: 1,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert!(store.find_consents(&t, &s).await.unwrap().is_empty());
}

/// Exports: stored for a subject that exists (else nothing, with the unit), read by their
/// tenant only, each download counted once even when racing (the last deletes the row), none
/// after expiry, listed as expired from their expiry on, deleted with the subject's erasure;
/// the subject's records are listed in any state.
pub async fn exports_are_taken_as_often_as_allowed_and_go_with_the_subject(store: Arc<dyn Store>) {
    use strongroom_core::ids::ExportId;
    use strongroom_core::store::ExportRow;
    let (t, s) = setup(&store, "acme").await;
    let (t2, _) = setup(&store, "other").await;
    let row = |s: &SubjectId, left: u32, expires_at: i64| ExportRow {
        tenant: t.clone(),
        id: ExportId::generate(&OsRng),
        subject: s.clone(),
        created_at: 10,
        expires_at,
        downloads_left: left,
        data: b"sealed".to_vec(),
    };
    let put = |r: ExportRow| UnitOfWork {
        ops: vec![Op::PutExport(r)],
        audit: vec![],
    };
    let take = |id: &ExportId, now: i64| UnitOfWork {
        ops: vec![Op::TakeExport {
            tenant: t.clone(),
            id: id.clone(),
            now,
        }],
        audit: vec![],
    };
    // A ghost subject, or another tenant's: nothing stored, the unit undone.
    let ghost = row(&SubjectId::generate(&OsRng), 1, 100);
    let mut foreign = row(&s, 1, 100);
    foreign.tenant = t2.clone();
    for bad in [ghost, foreign] {
        let first = row(&s, 1, 100);
        let r = store
            .commit(UnitOfWork {
                ops: vec![Op::PutExport(first.clone()), Op::PutExport(bad)],
                audit: vec![],
            })
            .await;
        assert!(matches!(r, Err(StoreError::Conflict("subject"))), "{r:?}");
        assert!(store.find_export(&t, &first.id).await.unwrap().is_none());
    }
    // Three downloads allowed, eight racing: three counted, the row gone after the third.
    let e = row(&s, 3, 100);
    store.commit(put(e.clone())).await.unwrap();
    assert_eq!(store.find_export(&t, &e.id).await.unwrap(), Some(e.clone()));
    assert!(store.find_export(&t2, &e.id).await.unwrap().is_none());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, unit) = (store.clone(), take(&e.id, 50));
        tasks.push(tokio::spawn(async move { store.commit(unit).await }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict("export")) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 3);
    assert!(store.find_export(&t, &e.id).await.unwrap().is_none());
    // Expired: not taken, listed from its expiry on, deleted.
    let old = row(&s, 2, 100);
    store.commit(put(old.clone())).await.unwrap();
    let r = store.commit(take(&old.id, 100)).await;
    assert!(matches!(r, Err(StoreError::Conflict("export"))), "{r:?}");
    assert_eq!(
        store
            .find_export(&t, &old.id)
            .await
            .unwrap()
            .unwrap()
            .downloads_left,
        2
    );
    assert!(store.find_expired_exports(99, 10).await.unwrap().is_empty());
    assert_eq!(
        store.find_expired_exports(100, 10).await.unwrap(),
        vec![(t.clone(), old.id.clone())]
    );
    store
        .commit(UnitOfWork {
            ops: vec![Op::DeleteExport {
                tenant: t.clone(),
                id: old.id.clone(),
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert!(store
        .find_expired_exports(1000, 10)
        .await
        .unwrap()
        .is_empty());
    // A subject's records in any state, paged by id; then erasure takes its exports.
    let mut ids = Vec::new();
    for i in 0..5u8 {
        let mut rec = record(&t, &s, &[i]);
        if i == 2 {
            rec.state = RecordState::Blocked;
        }
        ids.push(rec.id.clone());
        store
            .commit(UnitOfWork {
                ops: vec![Op::InsertRecord {
                    row: rec,
                    index: vec![],
                }],
                audit: vec![],
            })
            .await
            .unwrap();
    }
    ids.sort();
    let first = store
        .find_subject_record_rows(&t, &s, None, 3)
        .await
        .unwrap();
    let rest = store
        .find_subject_record_rows(&t, &s, Some(&first[2].id), 3)
        .await
        .unwrap();
    let got: Vec<RecordId> = first.iter().chain(&rest).map(|r| r.id.clone()).collect();
    assert_eq!(got, ids);
    assert!(store
        .find_subject_record_rows(&t2, &s, None, 10)
        .await
        .unwrap()
        .is_empty());
    let kept = row(&s, 1, 100);
    store.commit(put(kept.clone())).await.unwrap();
    store
        .commit(UnitOfWork {
            ops: vec![Op::EraseSubject {
                tenant: t.clone(),
                subject: s.clone(),
                records: 5,
            }],
            audit: vec![],
        })
        .await
        .unwrap();
    assert!(store.find_export(&t, &kept.id).await.unwrap().is_none());
}

/// Units commit while the files are scrubbed (SQLite: a checkpoint that truncates the
/// write-ahead log from another connection): a unit that reads before it writes must not
/// find its snapshot stale and fail.
pub async fn units_commit_while_the_files_are_scrubbed(store: Arc<dyn Store>) {
    let (t, _) = setup(&store, "acme").await;
    let mut subjects = Vec::new();
    for _ in 0..60 {
        let s = subject(&t, None);
        subjects.push(s.id.clone());
        store
            .commit(UnitOfWork {
                ops: vec![Op::InsertSubject(s)],
                audit: vec![],
            })
            .await
            .unwrap();
    }
    for s in subjects {
        // Erasing reads (it counts the records) before it writes.
        let erase = store.commit(UnitOfWork {
            ops: vec![Op::EraseSubject {
                tenant: t.clone(),
                subject: s,
                records: 0,
            }],
            audit: vec![],
        });
        let (erased, _) = tokio::join!(erase, store.scrub());
        erased.expect("a unit committed during a scrub");
    }
}

/// A tenant shredded: every row of it gone (another tenant's untouched), refused when the
/// counts it certifies are not what it holds (nothing deleted then); its archive taken once
/// with the right token hash, never after expiry.
pub async fn a_tenant_is_shredded_whole_and_its_archive_taken_once(store: Arc<dyn Store>) {
    use strongroom_core::store::{TenantArchiveRow, TenantCounts};
    let (t, s) = setup(&store, "acme").await;
    let (t2, s2) = setup(&store, "other").await;
    for (tenant, subject) in [(&t, &s), (&t2, &s2)] {
        store
            .commit(UnitOfWork {
                ops: vec![Op::InsertRecord {
                    row: record(tenant, subject, b"r"),
                    index: vec![],
                }],
                audit: vec![],
            })
            .await
            .unwrap();
    }
    store
        .commit(UnitOfWork {
            ops: vec![Op::InsertTenantKey(strongroom_core::store::TenantKeyRow {
                tenant: t.clone(),
                version: 1,
                wrapped: vec![9; 60],
                created_at: 1,
            })],
            audit: vec![],
        })
        .await
        .unwrap();
    assert_eq!(store.find_tenant_keys(&t).await.unwrap().len(), 1);
    let counts = store.count_tenant(&t).await.unwrap();
    assert_eq!(
        counts,
        TenantCounts {
            records: 1,
            subjects: 1,
            versions: 0
        }
    );
    let archive = TenantArchiveRow {
        tenant: t.clone(),
        token_hash: [7; 32],
        created_at: 1,
        expires_at: 100,
        data: b"sealed".to_vec(),
    };
    // Wrong counts: nothing happens, the archive not stored either.
    let wrong = TenantCounts {
        records: 2,
        ..counts.clone()
    };
    let r = store
        .commit(UnitOfWork {
            ops: vec![
                Op::PutTenantArchive(archive.clone()),
                Op::ShredTenant {
                    tenant: t.clone(),
                    counts: wrong,
                },
            ],
            audit: vec![],
        })
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert!(store.find_tenant(&t).await.unwrap().is_some());
    assert!(store.find_tenant_archive(&t).await.unwrap().is_none());
    store
        .commit(UnitOfWork {
            ops: vec![
                Op::PutTenantArchive(archive.clone()),
                Op::ShredTenant {
                    tenant: t.clone(),
                    counts,
                },
            ],
            audit: vec![],
        })
        .await
        .unwrap();
    assert!(store.find_tenant(&t).await.unwrap().is_none());
    assert!(store.find_subject(&t, &s).await.unwrap().is_none());
    assert!(store.find_tenant_keys(&t).await.unwrap().is_empty());
    assert_eq!(
        store.count_tenant(&t).await.unwrap(),
        TenantCounts::default()
    );
    assert_eq!(store.count_tenant(&t2).await.unwrap().records, 1);
    assert!(store.find_subject(&t2, &s2).await.unwrap().is_some());
    // The archive: a wrong hash or a late take gets nothing; the right one takes it once.
    let take = |hash: [u8; 32], now: i64| UnitOfWork {
        ops: vec![Op::TakeTenantArchive {
            tenant: t.clone(),
            token_hash: hash,
            now,
        }],
        audit: vec![],
    };
    for (hash, now) in [([8; 32], 50), ([7; 32], 100)] {
        let r = store.commit(take(hash, now)).await;
        assert!(matches!(r, Err(StoreError::Conflict("archive"))), "{r:?}");
    }
    assert_eq!(
        store.find_expired_archives(100, 10).await.unwrap(),
        vec![t.clone()]
    );
    store.commit(take([7; 32], 50)).await.unwrap();
    let r = store.commit(take([7; 32], 50)).await;
    assert!(matches!(r, Err(StoreError::Conflict("archive"))), "{r:?}");
    assert!(store.find_tenant_archive(&t).await.unwrap().is_none());
}
