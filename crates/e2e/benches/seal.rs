//! 1 KiB messages: Postern's seal+encrypt / unseal+decrypt (sealed sender, trust checks,
//! vault transaction with fsync) against bare libsignal `message_encrypt` /
//! `message_decrypt` (and bare sealed sender) on in-memory stores. Prints a comparison
//! table with ratios after criterion's own report.
//!
//! `cargo bench -p postern-e2e --bench seal -- --measurement-time 3`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use libsignal_protocol::*;
use postern_e2e::sender_certificate::{generate_sealed_sender_keys, issue_sender_certificate};
use postern_e2e::{ContentType, KdfParams, Messenger, OrgRoster, Vault};
use postern_identity::{DeviceKeyPair, Handle, OrgRoot, RevocationListBody, Role, SignalPublicKey};

const BODY: [u8; 1024] = [0x42; 1024];
const TTL: Duration = Duration::from_secs(3600);

fn run<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct PosternPair {
    _tmp: tempfile::TempDir,
    alice: Vault,
    bob: Vault,
    roster: OrgRoster,
    root: [u8; 33],
}

fn postern_pair() -> PosternPair {
    let tmp = tempfile::tempdir().unwrap();
    let org = OrgRoot::generate();
    let ss = generate_sealed_sender_keys().unwrap();
    let rl = org
        .sign_revocations(RevocationListBody::new(org.org_key(), 1, vec![]).unwrap())
        .unwrap();
    let mut roster = OrgRoster::new(org.org_key(), rl);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut enrol = |name: &str, serial| {
        let v = Vault::create(
            &tmp.path().join(name),
            b"pw",
            KdfParams::insecure_for_tests(),
        )
        .unwrap();
        v.initialise_member(name, SystemTime::now()).unwrap();
        let ik = v.identity_key().unwrap().serialize();
        roster.insert(
            org.issue_member_certificate(
                Handle::new(name).unwrap(),
                Role::Courier,
                SignalPublicKey::from_bytes(&ik).unwrap(),
                DeviceKeyPair::generate().public_key(),
                now - 60,
                now + 86400,
                serial,
            )
            .unwrap(),
        );
        let sc = issue_sender_certificate(&ss, name, ik.as_ref().try_into().unwrap(), now + 86400)
            .unwrap();
        v.set_sender_certificate(&sc).unwrap();
        v
    };
    let alice = enrol("alice", 1);
    let bob = enrol("bob", 2);
    let p = PosternPair {
        _tmp: tmp,
        alice,
        bob,
        roster,
        root: ss.trust_root_public,
    };
    let (am, bm) = (p.am(), p.bm());
    am.start_session("bob", &p.bob.prekey_bundle().unwrap(), SystemTime::now())
        .unwrap();
    // One round trip: from here on both send Whisper messages.
    let m = am
        .send("bob", ContentType::Text, b"hi", TTL, SystemTime::now())
        .unwrap();
    bm.receive(&m.sealed, SystemTime::now()).unwrap();
    let m = bm
        .send("alice", ContentType::Text, b"hi", TTL, SystemTime::now())
        .unwrap();
    am.receive(&m.sealed, SystemTime::now()).unwrap();
    p
}

impl PosternPair {
    fn am(&self) -> Messenger<'_> {
        Messenger::new(&self.alice, &self.roster, &self.root).unwrap()
    }
    fn bm(&self) -> Messenger<'_> {
        Messenger::new(&self.bob, &self.roster, &self.root).unwrap()
    }
}

struct BarePair {
    alice: InMemSignalProtocolStore,
    bob: InMemSignalProtocolStore,
    a: ProtocolAddress,
    b: ProtocolAddress,
    cert: SenderCertificate,
    root: PublicKey,
}

fn bare_pair() -> BarePair {
    let rng = &mut rand::rng();
    let mut alice = InMemSignalProtocolStore::new(IdentityKeyPair::generate(rng), 1).unwrap();
    let mut bob = InMemSignalProtocolStore::new(IdentityKeyPair::generate(rng), 2).unwrap();
    let dev = DeviceId::new(1).unwrap();
    let a = ProtocolAddress::new("alice".into(), dev);
    let b = ProtocolAddress::new("bob".into(), dev);
    let bik = run(bob.get_identity_key_pair()).unwrap();
    let signed = KeyPair::generate(rng);
    let sig = bik
        .private_key()
        .calculate_signature(&signed.public_key.serialize(), rng)
        .unwrap();
    let ts = Timestamp::from_epoch_millis(0);
    run(bob.save_signed_pre_key(
        1.into(),
        &SignedPreKeyRecord::new(1.into(), ts, &signed, &sig),
    ))
    .unwrap();
    let kyber =
        KyberPreKeyRecord::generate(kem::KeyType::Kyber1024, 1.into(), bik.private_key()).unwrap();
    run(bob.save_kyber_pre_key(1.into(), &kyber)).unwrap();
    let bundle = PreKeyBundle::new(
        2,
        dev,
        None,
        1.into(),
        signed.public_key,
        sig.to_vec(),
        1.into(),
        kyber.public_key().unwrap(),
        kyber.signature().unwrap(),
        *bik.identity_key(),
    )
    .unwrap();
    run(process_prekey_bundle(
        &b,
        &mut alice.session_store,
        &mut alice.identity_store,
        &bundle,
        SystemTime::now(),
        rng,
    ))
    .unwrap();
    let trust = KeyPair::generate(rng);
    let server = KeyPair::generate(rng);
    let sc = ServerCertificate::new(1, server.public_key, &trust.private_key, rng).unwrap();
    let aik = run(alice.get_identity_key_pair()).unwrap();
    let cert = SenderCertificate::new(
        "alice".into(),
        None,
        *aik.public_key(),
        dev,
        Timestamp::from_epoch_millis(u64::MAX / 2),
        sc,
        &server.private_key,
        rng,
    )
    .unwrap();
    let mut p = BarePair {
        alice,
        bob,
        a,
        b,
        cert,
        root: trust.public_key,
    };
    let m = p.encrypt();
    p.decrypt(&m);
    let m = run(message_encrypt(
        b"hi",
        &p.a,
        &mut p.bob.session_store,
        &mut p.bob.identity_store,
        SystemTime::now(),
        rng,
    ))
    .unwrap();
    run(message_decrypt(
        &m,
        &p.b,
        &mut p.alice.session_store,
        &mut p.alice.identity_store,
        &mut p.alice.pre_key_store,
        &p.alice.signed_pre_key_store,
        &mut p.alice.kyber_pre_key_store,
        rng,
    ))
    .unwrap();
    p
}

impl BarePair {
    fn encrypt(&mut self) -> CiphertextMessage {
        run(message_encrypt(
            &BODY,
            &self.b,
            &mut self.alice.session_store,
            &mut self.alice.identity_store,
            SystemTime::now(),
            &mut rand::rng(),
        ))
        .unwrap()
    }
    fn decrypt(&mut self, m: &CiphertextMessage) -> Vec<u8> {
        run(message_decrypt(
            m,
            &self.a,
            &mut self.bob.session_store,
            &mut self.bob.identity_store,
            &mut self.bob.pre_key_store,
            &self.bob.signed_pre_key_store,
            &mut self.bob.kyber_pre_key_store,
            &mut rand::rng(),
        ))
        .unwrap()
    }
    fn seal(&mut self) -> Vec<u8> {
        run(sealed_sender_encrypt(
            &self.b,
            &self.cert,
            &BODY,
            &mut self.alice.session_store,
            &mut self.alice.identity_store,
            SystemTime::now(),
            &mut rand::rng(),
        ))
        .unwrap()
    }
    fn unseal(&mut self, c: &[u8]) -> Vec<u8> {
        run(sealed_sender_decrypt(
            c,
            &self.root,
            Timestamp::from_epoch_millis(1),
            None,
            "bob".into(),
            DeviceId::new(1).unwrap(),
            &mut self.bob.identity_store,
            &mut self.bob.session_store,
            &mut self.bob.pre_key_store,
            &self.bob.signed_pre_key_store,
            &mut self.bob.kyber_pre_key_store,
        ))
        .unwrap()
        .message()
        .unwrap()
        .to_vec()
    }
}

fn benches(c: &mut Criterion) {
    let p = postern_pair();
    let am = p.am();
    let mut g = c.benchmark_group("1KiB");
    g.bench_function("postern seal+encrypt", |b| {
        b.iter(|| {
            am.send("bob", ContentType::Text, &BODY, TTL, SystemTime::now())
                .unwrap()
        })
    });
    // A fresh pair: the encrypt benchmark left ~10^4 messages Bob never received, and
    // receiving after such a gap makes libsignal keep up to 2,000 skipped message keys
    // in the session record, which every later receive then reads and rewrites.
    let p = postern_pair();
    let (am, bm) = (p.am(), p.bm());
    g.bench_function("postern unseal+decrypt", |b| {
        // Envelopes are made first, then received in order (as the bare decrypt below).
        b.iter_custom(|iters| {
            let msgs: Vec<_> = (0..iters)
                .map(|_| {
                    am.send("bob", ContentType::Text, &BODY, TTL, SystemTime::now())
                        .unwrap()
                })
                .collect();
            let t = Instant::now();
            for m in &msgs {
                black_box(bm.receive(&m.sealed, SystemTime::now()).unwrap());
            }
            t.elapsed()
        })
    });
    let mut bare = bare_pair();
    g.bench_function("libsignal message_encrypt", |b| b.iter(|| bare.encrypt()));
    let mut bare = bare_pair();
    g.bench_function("libsignal message_decrypt", |b| {
        b.iter_custom(|iters| {
            let msgs: Vec<_> = (0..iters).map(|_| bare.encrypt()).collect();
            let t = Instant::now();
            for m in &msgs {
                black_box(bare.decrypt(m));
            }
            t.elapsed()
        })
    });
    g.finish();
}

/// Our own timing of the same operations in this process, for the ratio table.
fn comparison(n: u32) {
    let p = postern_pair();
    let (am, bm) = (p.am(), p.bm());
    let mut bare = bare_pair();
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed() / n
    };
    let mut sealed = Vec::new();
    let p_enc = time(&mut || {
        sealed.push(
            am.send("bob", ContentType::Text, &BODY, TTL, SystemTime::now())
                .unwrap(),
        )
    });
    let mut it = sealed.iter();
    let p_dec = time(&mut || {
        bm.receive(&it.next().unwrap().sealed, SystemTime::now())
            .unwrap();
    });
    let mut msgs = Vec::new();
    let b_enc = time(&mut || msgs.push(bare.encrypt()));
    let mut it = msgs.iter();
    let b_dec = time(&mut || {
        black_box(bare.decrypt(it.next().unwrap()));
    });
    let mut seals = Vec::new();
    let s_enc = time(&mut || seals.push(bare.seal()));
    let mut it = seals.iter();
    let s_dec = time(&mut || {
        black_box(bare.unseal(it.next().unwrap()));
    });
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("\n1 KiB message, mean of {n} sequential operations (µs/op):");
    println!("{:<46}{:>12}{:>12}", "", "encrypt", "decrypt");
    println!(
        "{:<46}{:>12.1}{:>12.1}",
        "libsignal message_encrypt/decrypt (in-mem)",
        us(b_enc),
        us(b_dec)
    );
    println!(
        "{:<46}{:>12.1}{:>12.1}",
        "libsignal sealed sender v1 (in-mem)",
        us(s_enc),
        us(s_dec)
    );
    println!(
        "{:<46}{:>12.1}{:>12.1}",
        "postern send/receive (sealed, vault, fsync)",
        us(p_enc),
        us(p_dec)
    );
    println!(
        "{:<46}{:>11.1}x{:>11.1}x",
        "ratio postern / bare libsignal",
        us(p_enc) / us(b_enc),
        us(p_dec) / us(b_dec)
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
    // POSTERN_BENCH_N: operations per row of the comparison table (default 300).
    let n = std::env::var("POSTERN_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    comparison(n);
}
