//! 16 threads under session loss and logout, in a process of its own: logging out is per
//! application, so the faults it injects would reach every test running beside it.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{config, ctx, unique};
use ssekit_engine::keys::{DataKey, KeyProvider, KeySpec};
use ssekit_hsm::{Binding, Pkcs11Provider};

/// 16 threads × 2,000 mixed wrap/unwrap calls, while another thread keeps closing every pooled
/// session and logging the application out: no error, and every DEK comes back.
#[test]
fn sixteen_threads_under_session_loss_and_logout() {
    let home = tempfile::tempdir().unwrap();
    let p = Arc::new(Pkcs11Provider::open(&config(home.path(), Binding::HsmGcm)).unwrap());
    let id = unique("load");
    p.create_key(&KeySpec {
        id: Some(id.clone()),
        ..Default::default()
    })
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let faults = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                if n.is_multiple_of(2) {
                    p.drop_sessions();
                } else {
                    p.logout().unwrap();
                }
                n += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            n
        })
    };
    let workers: Vec<_> = (0..16)
        .map(|t| {
            let (p, id) = (p.clone(), id.clone());
            std::thread::spawn(move || {
                let c = ctx(&[("thread", &t.to_string())]);
                let mut kept = Vec::new();
                for i in 0..2_000 {
                    if i % 2 == 0 || kept.is_empty() {
                        let (dek, w) = p.generate_data_key(&id, &c).unwrap();
                        kept.push((dek, w));
                    } else {
                        let (dek, w): &(DataKey, _) = &kept[i % kept.len()];
                        assert_eq!(p.unwrap(w, &c).unwrap().expose(), dek.expose());
                    }
                }
                for (dek, w) in &kept {
                    assert_eq!(p.unwrap(w, &c).unwrap().expose(), dek.expose());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    stop.store(true, Ordering::SeqCst);
    let faults = faults.join().unwrap();
    assert!(faults > 2, "the fault thread ran {faults} times");
}
