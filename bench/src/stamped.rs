//! A Valkey connection that knows when each reply reached the machine: the kernel's receive
//! timestamp (SO_TIMESTAMPNS) of the last segment of the reply, not the moment the client thread
//! got round to reading it. A reader measured this way can run at the lowest priority, out of the
//! server's way as a client on another machine would be, without its own wait for a core showing
//! up in what it measures.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{SystemTime, UNIX_EPOCH};

use redis::{Cmd, Parser, Value};

/// One plain-TCP RESP2 connection with receive timestamps.
pub struct StampedConnection {
    socket: StampedSocket,
    parser: Parser,
}

impl StampedConnection {
    pub fn connect(port: u16) -> io::Result<StampedConnection> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket of ours, a c_int option value that outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StampedConnection { socket: StampedSocket { stream, last_ns: None }, parser: Parser::new() })
    }

    /// Sends `cmd` and reads its reply. Returns the reply and when it arrived (ns since the Unix
    /// epoch, wall clock); `stamped` is false when the kernel gave no timestamp and the time the
    /// read returned stands in.
    pub fn query(&mut self, cmd: &Cmd) -> io::Result<Stamped> {
        self.socket.stream.write_all(&cmd.get_packed_command())?;
        self.socket.last_ns = None;
        let reply = self.parser.parse_value(&mut self.socket).map_err(io::Error::other)?;
        let (arrived_ns, stamped) = match self.socket.last_ns {
            Some(ns) => (ns, true),
            None => (wall_ns(), false),
        };
        Ok(Stamped { reply, arrived_ns, stamped })
    }
}

pub struct Stamped {
    pub reply: Value,
    pub arrived_ns: u64,
    pub stamped: bool,
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// The socket, read with recvmsg so that the timestamp of what each read returned is kept.
struct StampedSocket {
    stream: TcpStream,
    /// Receive time of the newest segment the last read consumed.
    last_ns: Option<u64>,
}

impl Read for StampedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // Room for one timespec control message (CMSG_SPACE(16) is 32 on 64-bit Linux), u64-aligned.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data; all-zero is its empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = loop {
            // SAFETY: iov points into `buf` and control into `control`, both alive for the call.
            let n = unsafe { libc::recvmsg(self.stream.as_raw_fd(), &mut msg, 0) };
            if n >= 0 {
                break n as usize;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        };
        // SAFETY: walks the control buffer the kernel filled, with the kernel's own macros;
        // the timestamp is read unaligned from the message's data.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    self.last_ns = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentic_tests::Server;

    #[test]
    fn replies_carry_the_kernels_receive_time_between_send_and_return() {
        let server = Server::start_plain();
        let mut c = StampedConnection::connect(server.port).expect("connect");
        let mut setup = server.conn();
        // A reply of 4 MB arrives in many segments: its time is the last one's.
        let big = "x".repeat(4 << 20);
        let _: () = redis::cmd("SET").arg("big").arg(&big).query(&mut setup).expect("SET");
        for cmd in [redis::cmd("PING"), redis::cmd("GET").arg("big").clone()] {
            let before = wall_ns();
            let got = c.query(&cmd).expect("query");
            let after = wall_ns();
            assert!(got.stamped, "no kernel timestamp on the reply");
            assert!(before <= got.arrived_ns && got.arrived_ns <= after, "{before} <= {} <= {after}", got.arrived_ns);
        }
        // The connection stays in step: the next reply is the next command's.
        let got = c.query(redis::cmd("ECHO").arg("after")).expect("query");
        assert_eq!(got.reply, Value::BulkString(b"after".to_vec()));
        // A reader that is late to read still gets the time the reply arrived, not its own.
        c.socket.stream.write_all(&redis::cmd("PING").get_packed_command()).expect("send");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let read_at = wall_ns();
        c.socket.last_ns = None;
        let reply = c.parser.parse_value(&mut c.socket).expect("reply");
        assert_eq!(reply, Value::SimpleString("PONG".into()));
        let arrived = c.socket.last_ns.expect("timestamp");
        assert!(read_at - arrived >= 40_000_000, "arrival {arrived} should be ~50 ms before the read at {read_at}");
    }
}
