//! A client that sends and never reads, until the server pushes back.

use std::net::SocketAddr;

use super::RawConn;

/// The socket buffer size [`RawConn::connect_with_small_buffers`] asks
/// for (the kernel rounds it up to its minimum).
const SMALL_BUFFER: u32 = 4096;
impl RawConn {
    /// Connects with the smallest socket buffers the kernel allows on this
    /// side, so that a client that never reads meets back-pressure after
    /// little traffic.
    pub async fn connect_with_small_buffers(addr: SocketAddr) -> std::io::Result<RawConn> {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_send_buffer_size(SMALL_BUFFER)?;
        socket.set_recv_buffer_size(SMALL_BUFFER)?;
        Ok(RawConn {
            stream: socket.connect(addr).await?,
            pending: Vec::new(),
        })
    }

    /// Sends `bytes` again and again, reading nothing, until the server
    /// has answered and still the socket takes no more: the server stopped
    /// reading, its answers piled up unread. Returns how many copies went
    /// out (the last maybe in part) by then; `None` if all `times` copies
    /// went out without the server pushing back.
    pub async fn flood_until_pushed_back(
        &mut self,
        bytes: &[u8],
        times: usize,
    ) -> std::io::Result<Option<usize>> {
        use futures_util::FutureExt;
        let (mut copies, mut offset) = (0, 0);
        while copies < times {
            match self.stream.try_write(&bytes[offset..]) {
                Ok(n) => {
                    offset += n;
                    if offset == bytes.len() {
                        (copies, offset) = (copies + 1, 0);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut byte = [0u8];
                    let answered = self.stream.peek(&mut byte).now_or_never();
                    if matches!(answered, Some(Ok(n)) if n > 0) {
                        return Ok(Some(copies + usize::from(offset > 0)));
                    }
                    // Nothing answered yet: the server has not started
                    // reading. Wait until it takes some.
                    self.stream.writable().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}
