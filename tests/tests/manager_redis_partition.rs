//! A network partition of a Redis-manager lock holder (its own test binary: it
//! starts its own `redis-server` and makes a network namespace).
//!
//! The holder runs in a network namespace joined to the host by a veth pair;
//! the server listens on the host's end. While the holder holds the lock, its
//! link is cut (`ip link set ... down` inside the namespace): the other side
//! gets the lock once the lease ran out (`OwnerDied`, a larger fencing token)
//! and writes with it; when the link comes back, the cut-off holder's late
//! write with its old token is rejected.
//!
//! Needs root, `ip` (Debian's iproute2) and `redis-server`: without root it
//! says it was skipped; as root (CI) a failure to make the namespace fails the
//! test.

use procshare::{Event, Manager, ManagerError, Process, Value};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GENEROUS: Duration = Duration::from_secs(60);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e} (Debian: apt-get install iproute2)"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace, the veth pair and the server, removed on drop.
struct Net {
    ns: String,
    server: Option<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        // Deleting the namespace deletes its end of the pair, and with it
        // the host's end.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn cut_off_holder_loses_the_lock_and_its_late_write_is_rejected() {
    procshare_tests::quiet();
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED manager_redis_partition: needs root (ip netns)");
        return;
    }
    let id = std::process::id();
    let ns = format!("procshare-{id}");
    let (host_if, ns_if) = (
        format!("psh{}", id % 100_000),
        format!("psn{}", id % 100_000),
    );
    let subnet = 1 + id % 250;
    let (host_ip, ns_ip) = (format!("10.231.{subnet}.1"), format!("10.231.{subnet}.2"));
    ip(&["netns", "add", &ns]);
    let mut net = Net {
        ns: ns.clone(),
        server: None,
    };
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
    ]);
    ip(&["link", "set", &ns_if, "netns", &ns]);
    ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{ns_ip}/30"),
        "dev",
        &ns_if,
    ]);
    ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);

    // A server on the host's end of the pair (both sides use that address:
    // the host reaches its own address locally, the namespace over the link).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    net.server = Some(
        Command::new("redis-server")
            .args(["--bind", &host_ip, "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server)"),
    );
    let t0 = Instant::now();
    while std::net::TcpStream::connect((host_ip.as_str(), port)).is_err() {
        assert!(t0.elapsed() < GENEROUS, "redis-server did not start");
        std::thread::yield_now();
    }
    let url = format!("redis://{host_ip}:{port}/");

    let m = Manager::redis_with_lease(&url, "partition", Duration::from_millis(500)).unwrap();
    let lock = m.lock().unwrap();
    let account = m.value(0u32).unwrap();
    let (held, go) = (Event::new().unwrap(), Event::new().unwrap());
    let token = Value::new(0u64).unwrap();
    // 2: not written yet; 1: accepted; 0: rejected; 3: every try failed.
    let accepted = Value::new(2u8).unwrap();
    let ns_path = format!("/run/netns/{ns}");
    let (l, a, h, g, t, acc) = (
        lock.clone(),
        account.clone(),
        held.clone(),
        go.clone(),
        token.clone(),
        accepted.clone(),
    );
    let mut holder = Process::new(move || {
        // Into the namespace before any connection (this child's Redis
        // connections and its lease keeper are made after this).
        let f = std::fs::File::open(&ns_path).unwrap();
        rustix::thread::move_into_link_name_space(
            f.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        l.acquire().unwrap();
        let mine = l.fencing_token().expect("held here");
        t.set(mine);
        h.set();
        // Cut off here; the link is back when `go` is set.
        g.wait();
        // The connection may have died with the link: a request may fail
        // once, then reconnects.
        for _ in 0..5 {
            if let Ok(ok) = a.set_fenced(mine, &1) {
                acc.set(ok as u8);
                return;
            }
        }
        acc.set(3);
    });
    holder.start().unwrap();
    assert!(held.wait_timeout(GENEROUS), "the holder never acquired");

    // The partition: the holder's link goes down; its keeper can no longer
    // renew the lease.
    ip(&["-n", &ns, "link", "set", &ns_if, "down"]);
    let e = lock.acquire().unwrap_err();
    assert!(matches!(e, ManagerError::OwnerDied { .. }), "{e:?}");
    let mine = lock.fencing_token().expect("held here");
    assert!(mine > token.get(), "token {mine} after {}", token.get());
    assert!(account.set_fenced(mine, &2).unwrap());

    // The link comes back: the cut-off holder's late write is refused.
    ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
    go.set();
    holder.join().unwrap();
    assert_eq!(holder.exitcode(), Some(0));
    assert_eq!(
        accepted.get(),
        0,
        "the cut-off holder's late write was not rejected (2: not written, 1: accepted, 3: failed)"
    );
    assert_eq!(account.get().unwrap(), 2);
    lock.release().unwrap();
    let _ = Manager::redis_clear(&url, "partition");
    drop(net);
}
