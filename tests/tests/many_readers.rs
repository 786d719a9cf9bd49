//! 100,000 blocked AGENT.FEED readers on one server (issue 13 point 5): they cost a bounded amount
//! of memory each, the server keeps answering, one fan-out wakes every reader of its users, a
//! connection beyond `maxclients` gets Valkey's clear error, and when the readers go away nothing
//! of them is left (`blocked_clients` in INFO clients counts them throughout).
//!
//! Needs about 100,000 open files in this process and in the server: the test raises its own
//! limit (a process allowed to may raise the hard limit too) and tells the server `--maxclients`;
//! under a lower hard limit it runs with as many readers as fit (at least 1,000) and prints how
//! many. On the development machine the hard limit is 20,000: 19,000 readers.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use agentic_tests::{info_field, wait_for, Server};
use common::*;

const WANTED: usize = 100_000;
const USERS: usize = 1_000;
/// Connections per loopback source address, each from its own fixed port: letting the kernel
/// pick a free port for every bind searches the range, which gets slower as the ports fill. The
/// ports lie below the ephemeral range (32768-60999), where other tests' servers find free ports.
const PER_SOURCE: usize = 30_000;
const FIRST_SOURCE_PORT: u16 = 2_000;

/// Raises this process's open-file limit towards `want`; returns the soft limit reached.
fn raise_fd_limit(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        let raised = libc::rlimit { rlim_cur: want.max(lim.rlim_cur), rlim_max: want.max(lim.rlim_max) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// A connection from `127.0.0.<n>`, port `source_port` (0: any), to `port` on 127.0.0.1.
fn connect_from(n: u8, source_port: u16, port: u16) -> std::io::Result<TcpStream> {
    // SAFETY: a fresh socket; on every error path it is closed before returning.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let addr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = addr(Ipv4Addr::new(127, 0, 0, n), source_port);
        let remote = addr(*SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).ip(), port);
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0
            || libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        // Closing resets the connection instead of leaving 100,000 ports in TIME_WAIT for a
        // minute, which would keep them from the next tests.
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        Ok(TcpStream::from_raw_fd(fd))
    }
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn number(c: &mut redis::Connection, section: &str, field: &str) -> i64 {
    info_field(c, section, field).and_then(|v| v.parse().ok()).unwrap_or(-1)
}

#[test]
fn blocked_readers_by_the_hundred_thousand_are_bounded_and_all_woken() {
    let limit = raise_fd_limit(WANTED as u64 + 5_000);
    let readers = WANTED.min(limit.saturating_sub(1_000) as usize);
    assert!(readers >= 1_000, "this process may open only {limit} files");
    let server = Server::builder().arg("--maxclients", &(readers + 10).to_string()).start();
    let mut c = server.conn();
    let users: Vec<String> = (0..USERS).map(|u| format!("user:{{r{u}}}")).collect();
    subscribe_many(&mut c, &users, "news");
    let memory_before = number(&mut c, "memory", "used_memory");

    let started = Instant::now();
    let mut sockets = Vec::with_capacity(readers);
    for i in 0..readers {
        let source = 2 + (i / PER_SOURCE) as u8;
        let source_port = FIRST_SOURCE_PORT + (i % PER_SOURCE) as u16;
        let mut s = connect_from(source, source_port, server.port)
            .or_else(|_| connect_from(source, 0, server.port))
            .unwrap_or_else(|e| panic!("reader {i} from 127.0.0.{source}: {e}"));
        s.write_all(&resp(&["AGENT.FEED", &users[i % USERS], "AFTER", "$", "BLOCK", "0"])).expect("send AGENT.FEED");
        sockets.push(s);
    }
    let blocked = wait_for(|| number(&mut c, "clients", "blocked_clients") == readers as i64, Duration::from_secs(120));
    assert!(blocked, "blocked_clients {} of {readers}", number(&mut c, "clients", "blocked_clients"));
    let connect_s = started.elapsed().as_secs_f64();
    let per_reader = (number(&mut c, "memory", "used_memory") - memory_before) / readers as i64;

    // The server keeps answering with all of them waiting.
    let mut pings = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let _: String = redis::cmd("PING").query(&mut c).expect("PING");
        pings.push(t.elapsed());
    }
    pings.sort();

    // One more connection than maxclients allows gets the clear error.
    let extra: Vec<TcpStream> = (0..15).filter_map(|_| connect_from(250, 0, server.port).ok()).collect();
    let mut refused = 0;
    for mut s in extra {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let _ = s.write_all(&resp(&["PING"]));
        let mut buf = [0u8; 128];
        let n = s.read(&mut buf).unwrap_or(0);
        refused += String::from_utf8_lossy(&buf[..n]).contains("max number of clients") as usize;
    }
    assert!(refused >= 1, "a client beyond maxclients is told why");

    // One fan-out to every user wakes every reader with the new entry.
    let t = Instant::now();
    assert_eq!(fanout(&mut c, "news", "doc:{wake}", "wake up"), (USERS as i64, 0));
    let mut woken = 0;
    for s in &mut sockets {
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).expect("a woken reader's reply");
        woken += String::from_utf8_lossy(&buf[..n]).contains("doc:{wake}") as usize;
    }
    let wake_s = t.elapsed().as_secs_f64();
    assert_eq!(woken, readers, "every reader got the entry");
    assert!(wait_for(|| number(&mut c, "clients", "blocked_clients") == 0, Duration::from_secs(30)));
    drop(sockets);
    assert!(wait_for(|| number(&mut c, "clients", "connected_clients") <= 2, Duration::from_secs(60)), "the readers' connections are gone");
    assert_eq!(stat(&mut c, "panics_caught"), 0);
    println!(
        "{readers} blocked AGENT.FEED readers on {USERS} users: connected and blocked in {connect_s:.1} s, {per_reader} bytes of \
         used_memory each, PING p50 {:?} p99 {:?} while they wait, one fan-out woke them all in {wake_s:.2} s",
        pings[pings.len() / 2],
        pings[pings.len() * 99 / 100]
    );
}
