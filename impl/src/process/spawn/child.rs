//! The child's side: decoding the request, running the target, the fork
//! server's loop, and the entry that runs before `main`.

use super::*;

// ---------------------------------------------------------------------------
// Child side.

/// Is `addr` inside an executable mapping of the file `ino`?
pub(super) fn in_exe_code(addr: usize, ino: u64) -> bool {
    crate::sys::proc::in_executable_mapping(addr, ino)
}

/// A decoded request: the target to run, and the child's identity.
pub(super) type Prepared = (Box<dyn FnOnce()>, crate::process::me::ChildInfo);

/// Decodes the request: the function to run, with its arguments.
pub(super) fn prepare(payload: OwnedFd, segments: Vec<OwnedFd>) -> Result<Prepared, SpawnError> {
    let file = std::fs::File::from(payload);
    let len = file.metadata().map_err(os_err("fstat payload"))?.len();
    if len > 1 << 32 {
        return Err(SpawnError::BadRequest("payload too large"));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(os_err("read payload"))?;
    let p: Payload = postcard::from_bytes(&bytes)
        .map_err(|_| SpawnError::BadRequest("payload does not decode"))?;
    if p.magic != PAYLOAD_MAGIC {
        return Err(SpawnError::BadRequest("bad payload magic"));
    }
    let me = ExeId::current()?;
    if me != p.exe {
        return Err(SpawnError::BinaryChanged {
            expected: p.exe.to_string(),
            found: me.to_string(),
        });
    }
    let base = anchor_addr();
    let t = base.wrapping_add(p.trampoline as usize);
    let f = base.wrapping_add(p.function as usize);
    if !in_exe_code(t, me.ino) || !in_exe_code(f, me.ino) {
        return Err(SpawnError::BadRequest(
            "target address outside the binary's code",
        ));
    }
    let mut segments = segments;
    let plain = segments
        .len()
        .checked_sub(p.fds as usize)
        .ok_or(SpawnError::BadRequest(
            "fewer descriptors than the request names",
        ))?;
    let fds = segments.split_off(plain).into_iter().map(Some).collect();
    let segments = segments
        .into_iter()
        .map(|fd| Segment::attach(fd).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    // The managers of proxy arguments, known before the arguments decode
    // (kept until they have: the proxies then hold them).
    let _managers = crate::manager::spawn::install(&p.managers)
        .map_err(|what| SpawnError::Decode { what, source: None })?;
    let mut im = Importer {
        bytes: p.args,
        pos: 0,
        segments,
        fds,
    };
    // SAFETY: `t` is the address of `trampoline::<A>` in this binary (same file
    // as the parent's, checked above; the offset was taken by the parent from
    // that function), so it has the `Trampoline` signature.
    let t = unsafe { core::mem::transmute::<usize, Trampoline>(t) };
    Ok((t(&mut im, f)?, p.info))
}

/// Runs a child: decode, report, run, exit. Never returns.
pub(super) fn child_run(payload: OwnedFd, status: OwnedFd, segments: Vec<OwnedFd>, how: &str) -> ! {
    let code = match catch_unwind(AssertUnwindSafe(|| prepare(payload, segments))) {
        Ok(Ok((run, info))) => {
            // Before the handshake: the parent waits in `start` meanwhile, so
            // it is alive while the child opens its pidfd.
            crate::process::child_setup(info);
            let _ = send_msg(status.as_fd(), &Status::Started(None), &[]);
            // A spawned child's parent stops listening after the handshake; a
            // forkserver child keeps its socket to report its own exit code
            // (see `served_exit`: the server may be gone by then).
            let keep = (how == "forkserver").then_some(status);
            let code = match catch_unwind(AssertUnwindSafe(run)) {
                Ok(()) => 0,
                Err(_) => 1, // the panic hook printed the message
            };
            crate::process::me::terminate_daemons();
            if let Some(status) = keep {
                let _ = send_msg(status.as_fd(), &Status::Exit(code), &[]);
            }
            code
        }
        Ok(Err(e)) => {
            // The child's own exit report (as a panic message is), not a
            // library diagnostic: written to its stderr, where the module
            // docs promise it (no logger exists yet in a spawned child).
            crate::sys::write_stderr_raw(
                format!(
                    "procshare: the {how} child (pid {}) cannot start: {e}\n",
                    std::process::id()
                )
                .as_bytes(),
            );
            let _ = send_msg(status.as_fd(), &Status::Started(Some(e.to_string())), &[]);
            1
        }
        Err(_) => {
            let msg = "an argument's decoding panicked".to_string();
            let _ = send_msg(status.as_fd(), &Status::Started(Some(msg)), &[]);
            1
        }
    };
    let _ = catch_unwind(|| {
        let _ = std::io::stdout().lock().flush();
    });
    crate::sys::proc::exit(code)
}

pub(super) struct Kid {
    pub(super) pid: RawPid,
    pub(super) pidfd: OwnedFd,
    pub(super) status: OwnedFd,
}

/// The fork server's loop. Never returns.
pub(super) fn server_main(ctl: OwnedFd) -> ! {
    let mut kids: Vec<Kid> = Vec::new();
    loop {
        let ready = {
            let mut fds = vec![ctl.as_fd()];
            fds.extend(kids.iter().map(|k| k.pidfd.as_fd()));
            match poll_in(&fds, None) {
                Ok(r) => r,
                Err(_) => break,
            }
        };
        // Children that exited: reap them and report.
        let mut i = kids.len();
        while i > 0 {
            i -= 1;
            if ready[i + 1] {
                let k = kids.swap_remove(i);
                let code = match crate::sys::proc::wait_child(k.pid, true) {
                    Ok(Some(code)) => code,
                    _ => 255,
                };
                let _ = send_msg(k.status.as_fd(), &Status::Exit(code), &[]);
            }
        }
        if !ready[0] {
            continue;
        }
        let mut buf = [0u8; 64];
        let (_, mut fds) = match recv_raw(ctl.as_fd(), false, &mut buf) {
            Ok(Some(m)) => m,
            Ok(None) => {
                // End of stream: the parent is gone (or nothing was there).
                if matches!(
                    poll_in(&[ctl.as_fd()], Some(Duration::ZERO)).as_deref(),
                    Ok([true])
                ) {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        if fds.len() < 2 {
            continue; // malformed request: ignore it
        }
        let segments = fds.split_off(2);
        let status = fds.pop().expect("two fds");
        let payload = fds.pop().expect("two fds");
        // The server is single-threaded (a fresh exec that started no thread),
        // so the child may run anything; it leaves by `child_run`, which never
        // returns. In the server the closure (its copies of the request's
        // descriptors) is dropped unused.
        // The child closes its copies of the server's own descriptors (the
        // control socket, other children's pidfds and status sockets), whose
        // owners are never dropped there.
        let mut servers: Vec<RawFd> = vec![ctl.as_raw_fd()];
        for k in &kids {
            servers.push(k.pidfd.as_raw_fd());
            servers.push(k.status.as_raw_fd());
        }
        let forked = crate::sys::fork::fork(|_| {
            crate::sys::io::close_inherited(&servers);
            // The child's own copy of its status socket, which `child_run`
            // closes once it has reported; the server's copy (in this
            // process's memory, never dropped here) is closed now.
            let Ok(mine) = status.try_clone() else {
                return 1;
            };
            crate::sys::io::close_inherited(&[status.as_raw_fd()]);
            let status = mine;
            child_run(payload, status, segments, "forkserver")
        });
        let pid = match forked {
            Ok(pid) => pid,
            Err(e) => {
                let msg = format!("fork failed: {e}");
                let _ = send_msg(status.as_fd(), &Status::Started(Some(msg)), &[]);
                continue;
            }
        };
        let Some(pidfd) = pidfd_of(pid) else {
            // Cannot watch it: wait for it here (rare: no pidfd support).
            let _ = send_msg(status.as_fd(), &Status::Pid(pid), &[]);
            let code = crate::sys::proc::wait_child(pid, true)
                .ok()
                .flatten()
                .unwrap_or(255);
            let _ = send_msg(status.as_fd(), &Status::Exit(code), &[]);
            continue;
        };
        let _ = send_msg(status.as_fd(), &Status::Pid(pid), &[pidfd.as_fd()]);
        kids.push(Kid { pid, pidfd, status });
    }
    // Ends the server at once.
    crate::sys::proc::exit(0)
}

pub(super) fn parse_fds(s: &str) -> Option<Vec<OwnedFd>> {
    s.split(',')
        .map(|x| {
            let fd: RawFd = x.parse().ok()?;
            if fd < 0 {
                return None;
            }
            // SAFETY: the parent passed us this descriptor for us alone (a
            // number that is not open fails the set_cloexec below).
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // Close-on-exec again: a program the target runs must not keep it.
            if crate::sys::proc::set_cloexec(fd.as_fd(), true).is_err() {
                // Not an open descriptor: do not let the OwnedFd close it.
                core::mem::forget(fd);
                return None;
            }
            Some(fd)
        })
        .collect()
}

/// Run by the loader before `main` in every process of a binary linked with
/// procshare: turns a spawned start into the child (or the fork server).
pub(super) extern "C" fn spawn_entry() {
    // Before main: no other thread exists to read or modify the environment
    // concurrently.
    let Some(v) = std::env::var_os(ENV) else {
        return;
    };
    let value = v.to_string_lossy().into_owned();
    std::env::remove_var(ENV);
    // As Rust's main does.
    crate::sys::proc::ignore_signal(crate::sys::proc::Ignored::Pipe);
    let bad = |what: &str| -> ! {
        // The child's exit report (see `child_run`), on its stderr.
        crate::sys::write_stderr_raw(
            format!("procshare: malformed {ENV}={value:?}: {what}\n").as_bytes(),
        );
        crate::sys::proc::exit(1)
    };
    if let Some(rest) = value.strip_prefix("spawn:") {
        let Some(mut fds) = parse_fds(rest).filter(|f| f.len() >= 2) else {
            bad("expected descriptors");
        };
        let segments = fds.split_off(2);
        let status = fds.pop().expect("two fds");
        let payload = fds.pop().expect("two fds");
        child_run(payload, status, segments, "spawn");
    }
    if let Some(rest) = value.strip_prefix("forkserver:") {
        let Some(mut fds) = parse_fds(rest).filter(|f| f.len() == 1) else {
            bad("expected one descriptor");
        };
        let ctl = fds.pop().expect("one fd");
        server_main(ctl);
    }
    bad("unknown mode");
}

#[used]
#[link_section = ".init_array"]
pub(super) static SPAWN_ENTRY: extern "C" fn() = spawn_entry;
