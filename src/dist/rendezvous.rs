//! Rank 0's bytes (the NCCL unique id) to every rank over TCP, for launches without MPI
//! (`torchrun`, `srun`, a hand-started set of processes): rank 0 listens at the rendezvous
//! address, the other ranks connect, say who they are, and read the bytes. This is the only
//! networking the crate does; NCCL itself finds its own transport once it has the id.
//!
//! The address is torchrun's `MASTER_ADDR` with `MASTER_PORT`, except that under torchrun
//! (`TORCHELASTIC_RUN_ID` set) its agent already serves its own store on `MASTER_PORT`, so the
//! port after it is used; `MASSIVETEXT_RENDEZVOUS_PORT` names another port.
use crate::{Error, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The first bytes of every message: a stray connection (or another program on the port) is
/// refused with a message instead of being misread as a rank.
const MAGIC: &[u8; 16] = b"massivetext-rdv1";

/// Where the ranks meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    /// How long to wait for the other side (ranks start at different times).
    pub timeout: Duration,
}

impl Rendezvous {
    /// The rendezvous of this launch's environment (`get` reads a variable).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let host = get("MASTER_ADDR").ok_or_else(|| {
            Error::InvalidConfig(
                "the NCCL backend without MPI needs MASTER_ADDR and MASTER_PORT (torchrun sets them; with srun or by hand, set them to rank 0's host and a free port)".into(),
            )
        })?;
        let port = |name: &str| -> Result<Option<u16>> {
            get(name)
                .map(|v| {
                    v.trim().parse::<u16>().map_err(|_| {
                        Error::InvalidConfig(format!("{name}={v:?} is not a port number (1-65535)"))
                    })
                })
                .transpose()
        };
        let port = match port("MASSIVETEXT_RENDEZVOUS_PORT")? {
            Some(p) => p,
            None => {
                let master = port("MASTER_PORT")?.ok_or_else(|| {
                    Error::InvalidConfig(
                        "MASTER_ADDR is set but MASTER_PORT is not; set it to a free port of rank 0's host".into(),
                    )
                })?;
                if get("TORCHELASTIC_RUN_ID").is_some() {
                    master.checked_add(1).ok_or_else(|| {
                        Error::InvalidConfig(
                            "MASTER_PORT=65535 leaves no port after it for the NCCL id under torchrun; set MASSIVETEXT_RENDEZVOUS_PORT".into(),
                        )
                    })?
                } else {
                    master
                }
            }
        };
        Ok(Rendezvous {
            host,
            port,
            timeout: Duration::from_secs(300),
        })
    }

    fn place(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::InvalidArgument(format!(
            "rendezvous at {}: {what}: {e}; check that MASTER_ADDR is rank 0's host, that the port is free there and open between the hosts",
            self.place()
        ))
    }

    /// Rank `rank` of `world_size`: rank 0 gives `bytes` (its own are returned), every other
    /// rank gets rank 0's. Every rank of the launch must call it.
    pub fn share(&self, rank: usize, world_size: usize, bytes: &[u8]) -> Result<Vec<u8>> {
        if rank >= world_size {
            return Err(Error::InvalidArgument(format!(
                "rendezvous: rank {rank} of a world of {world_size}"
            )));
        }
        if world_size == 1 {
            return Ok(bytes.to_vec());
        }
        if rank == 0 {
            self.serve(world_size, bytes)?;
            Ok(bytes.to_vec())
        } else {
            self.fetch(rank, world_size)
        }
    }

    /// Rank 0: accepts one connection from every other rank, checks who it is, then sends the
    /// bytes to all of them.
    fn serve(&self, world_size: usize, bytes: &[u8]) -> Result<()> {
        let listener = TcpListener::bind(("0.0.0.0", self.port))
            .map_err(|e| self.io_error("rank 0 could not listen", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| self.io_error("listening", e))?;
        let deadline = Instant::now() + self.timeout;
        let mut peers: Vec<Option<TcpStream>> = (0..world_size).map(|_| None).collect();
        let mut missing = world_size - 1;
        while missing > 0 {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let absent: Vec<String> = (1..world_size)
                            .filter(|&r| peers[r].is_none())
                            .map(|r| r.to_string())
                            .collect();
                        return Err(Error::InvalidArgument(format!(
                            "rendezvous at {}: rank(s) {} of {world_size} did not connect within {} s; start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE",
                            self.place(),
                            absent.join(", "),
                            self.timeout.as_secs()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                Err(e) => return Err(self.io_error("accepting a rank", e)),
            };
            stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_read_timeout(Some(Duration::from_secs(30))))
                .map_err(|e| self.io_error("a rank's connection", e))?;
            let (rank, world) =
                read_hello(&mut stream).map_err(|e| self.io_error("a rank's greeting", e))?;
            if world != world_size || rank == 0 || rank >= world_size {
                return Err(Error::InvalidArgument(format!(
                    "rendezvous at {}: a process says it is rank {rank} of {world}, and this is rank 0 of {world_size}; start every rank with the same WORLD_SIZE",
                    self.place()
                )));
            }
            if peers[rank].is_some() {
                return Err(Error::InvalidArgument(format!(
                    "rendezvous at {}: two processes say they are rank {rank}; give every process its own RANK",
                    self.place()
                )));
            }
            peers[rank] = Some(stream);
            missing -= 1;
        }
        for mut peer in peers.into_iter().flatten() {
            let mut msg = MAGIC.to_vec();
            msg.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            msg.extend_from_slice(bytes);
            peer.write_all(&msg)
                .map_err(|e| self.io_error("sending the id", e))?;
        }
        Ok(())
    }

    /// Rank > 0: connects (retrying until rank 0 listens), says who it is, reads the bytes.
    fn fetch(&self, rank: usize, world_size: usize) -> Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        let mut stream = loop {
            let addrs = self
                .place()
                .to_socket_addrs()
                .map_err(|e| self.io_error("resolving MASTER_ADDR", e))?;
            let mut last = String::from("no address");
            let mut connected = None;
            for a in addrs {
                match TcpStream::connect_timeout(&a, Duration::from_secs(5)) {
                    Ok(s) => {
                        connected = Some(s);
                        break;
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            if let Some(s) = connected {
                break s;
            }
            if Instant::now() > deadline {
                return Err(Error::InvalidArgument(format!(
                    "rendezvous at {}: rank {rank} could not reach rank 0 within {} s ({last}); start rank 0 too, with the same MASTER_ADDR and MASTER_PORT",
                    self.place(),
                    self.timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&(rank as u64).to_le_bytes());
        hello.extend_from_slice(&(world_size as u64).to_le_bytes());
        stream
            .write_all(&hello)
            .map_err(|e| self.io_error("greeting rank 0", e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(|e| self.io_error("waiting for rank 0", e))?;
        let mut head = [0u8; 24];
        stream
            .read_exact(&mut head)
            .map_err(|e| self.io_error("reading the id from rank 0", e))?;
        if &head[..16] != MAGIC {
            return Err(Error::InvalidArgument(format!(
                "rendezvous at {}: the process listening there is not a massivetext rank 0; pick a free port (MASTER_PORT or MASSIVETEXT_RENDEZVOUS_PORT)",
                self.place()
            )));
        }
        let len = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default()) as usize;
        if len > 1 << 20 {
            return Err(Error::InvalidArgument(format!(
                "rendezvous at {}: rank 0 announced {len} bytes, more than an id; is another program on this port?",
                self.place()
            )));
        }
        let mut bytes = vec![0; len];
        stream
            .read_exact(&mut bytes)
            .map_err(|e| self.io_error("reading the id from rank 0", e))?;
        Ok(bytes)
    }
}

/// A rank's greeting: the magic, its rank, the world size it was started with.
fn read_hello(stream: &mut TcpStream) -> std::io::Result<(usize, usize)> {
    let mut hello = [0u8; 32];
    stream.read_exact(&mut hello)?;
    if &hello[..16] != MAGIC {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a connection that is not a massivetext rank (another program on this port?)",
        ));
    }
    let num = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize;
    Ok((num(&hello[16..24]), num(&hello[24..32])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(29_611)
    }

    fn at(port: u16, secs: u64) -> Rendezvous {
        Rendezvous {
            host: "127.0.0.1".into(),
            port,
            timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn every_rank_gets_rank_0s_bytes_whenever_it_starts() {
        let port = free_port();
        let id: Vec<u8> = (0..128).map(|i| (i * 7 % 251) as u8).collect();
        let handles: Vec<_> = (0..4)
            .map(|rank| {
                let id = id.clone();
                std::thread::spawn(move || {
                    // ranks start in reverse order: the clients wait for rank 0
                    std::thread::sleep(Duration::from_millis(40 * (3 - rank as u64)));
                    let mine = if rank == 0 { id } else { vec![0; 3] };
                    at(port, 20).share(rank, 4, &mine)
                })
            })
            .collect();
        for (rank, h) in handles.into_iter().enumerate() {
            let got = h
                .join()
                .expect("the rank's thread")
                .expect("the rendezvous");
            assert_eq!(got, id, "rank {rank}");
        }
    }

    #[test]
    fn a_rank_with_another_world_size_is_named() {
        let port = free_port();
        let server = std::thread::spawn(move || at(port, 20).share(0, 2, b"id"));
        let client = at(port, 20).share(1, 3, b"");
        let err = server
            .join()
            .expect("rank 0's thread")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rank 1 of 3") && err.contains("rank 0 of 2"),
            "{err}"
        );
        assert!(client.is_err(), "the client gets no id: {client:?}");
    }

    #[test]
    fn a_missing_rank_0_times_out_with_the_address() {
        let port = free_port();
        let err = at(port, 1).share(1, 2, b"").unwrap_err().to_string();
        assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(err.contains("could not reach rank 0 within 1 s"), "{err}");
    }

    #[test]
    fn the_address_comes_from_torchruns_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let plain =
            Rendezvous::from_env(env(&[("MASTER_ADDR", "node1"), ("MASTER_PORT", "29500")]))
                .unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("node1", 29500));
        // under torchrun its agent's store holds MASTER_PORT
        let torchrun = Rendezvous::from_env(env(&[
            ("MASTER_ADDR", "node1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_RUN_ID", "none"),
        ]))
        .unwrap();
        assert_eq!(torchrun.port, 29501);
        let chosen = Rendezvous::from_env(env(&[
            ("MASTER_ADDR", "node1"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_RUN_ID", "none"),
            ("MASSIVETEXT_RENDEZVOUS_PORT", "40000"),
        ]))
        .unwrap();
        assert_eq!(chosen.port, 40000);
        let e = Rendezvous::from_env(env(&[("MASTER_PORT", "29500")])).unwrap_err();
        assert!(e.to_string().contains("MASTER_ADDR"), "{e}");
        let e = Rendezvous::from_env(env(&[("MASTER_ADDR", "a"), ("MASTER_PORT", "http")]))
            .unwrap_err();
        assert!(e.to_string().contains("MASTER_PORT=\"http\""), "{e}");
    }
}
