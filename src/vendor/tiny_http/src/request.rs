use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use std::sync::mpsc::Sender;

use crate::util::deadline::ConnState;
use crate::util::framing::Body;
use crate::{HTTPVersion, Header, Method, Response, StatusCode};
use std::convert::TryFrom;
use std::sync::Arc;

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header or `Connection: upgrade` header (used for
///    websockets), which indicates that this is the last request that will be received on this
///    connection
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    // PATCH(knowledge-vault): framed strictly, drained within a bound.
    data_reader: Option<Body>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // If Some, a message must be sent after responding
    notify_when_responded: Option<Sender<()>>,

    // PATCH(knowledge-vault): a clone of the TCP socket, only for a connection's
    // first request when it asks for an upgrade.
    pub(crate) raw_stream: Option<std::net::TcpStream>,

    // PATCH(knowledge-vault): the connection's deadlines and framing state,
    // and whether the connection ends after this request (the response
    // then says `Connection: close`).
    state: Arc<ConnState>,
    closing: bool,
}

struct NotifyOnDrop<R> {
    sender: Sender<()>,
    inner: R,
}

impl<R: Read> Read for NotifyOnDrop<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}
impl<R: Write> Write for NotifyOnDrop<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
impl<R> Drop for NotifyOnDrop<R> {
    fn drop(&mut self) {
        self.sender.send(()).unwrap();
    }
}

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// PATCH(knowledge-vault): the body's framing is ambiguous or invalid
    /// (400, and the connection is closed).
    BadFraming(&'static str),

    /// PATCH(knowledge-vault): a transfer coding other than chunked (501).
    NotImplemented(&'static str),

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    source_data: R,
    writer: W,
    state: Arc<ConnState>,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    // PATCH(knowledge-vault): framing as RFC 9112 §6 says, refusing every
    // ambiguity instead of guessing (request smuggling behind a proxy):
    // Transfer-Encoding with Content-Length, several different or
    // unparsable Content-Lengths, a coding other than a final chunked.
    // A `Connection: upgrade` request is framed like any other: the
    // upgrade happens only after its body (RFC 9110 §7.8).
    use RequestCreationError::{BadFraming, NotImplemented};
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h: &&Header| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    let codings: Vec<String> = named("Transfer-Encoding")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let mut content_length = None;
    for v in named("Content-Length") {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadFraming("invalid Content-Length"));
        }
        let n: u64 = v.parse().map_err(|_| BadFraming("invalid Content-Length"))?;
        if content_length.is_some_and(|m| m != n) {
            return Err(BadFraming("conflicting Content-Length headers"));
        }
        content_length = Some(n);
    }
    let chunked = !codings.is_empty();
    if chunked {
        if content_length.is_some() {
            return Err(BadFraming("both Transfer-Encoding and Content-Length"));
        }
        if version == HTTPVersion(1, 0) {
            return Err(BadFraming("Transfer-Encoding in an HTTP/1.0 request"));
        }
        match codings.iter().rposition(|c| c == "chunked") {
            Some(i) if i + 1 == codings.len() && codings.len() == 1 => {}
            Some(i) if i + 1 == codings.len() && !codings[..i].iter().any(|c| c == "chunked") => {
                return Err(NotImplemented("only the chunked transfer coding is supported"));
            }
            _ => return Err(BadFraming("chunked must be the final transfer coding, once")),
        }
    }

    // true if the client sent a `Expect: 100-continue` header
    let mut expects_continue = false;
    for v in named("Expect") {
        if !v.eq_ignore_ascii_case("100-continue") {
            return Err(RequestCreationError::ExpectationFailed);
        }
        expects_continue = true;
    }

    let source: Box<dyn Read + Send> = Box::new(source_data);
    let reader = match content_length {
        _ if chunked => Body::chunked(source, state.clone()),
        Some(n) => Body::length(source, n, state.clone()),
        None => Body::none(source, state.clone()),
    };

    Ok(Request {
        data_reader: Some(reader),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        must_send_continue: expects_continue && (chunked || content_length.is_some_and(|n| n > 0)),
        notify_when_responded: None,
        raw_stream: None,
        state,
        closing: false,
    })
}

impl Request {
    /// PATCH(knowledge-vault): the connection ends after this request.
    pub(crate) fn closing(mut self, closing: bool) -> Request {
        self.closing = closing;
        self
    }

    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Sends a response with a `Connection: upgrade` header, then turns the `Request` into a `Stream`.
    ///
    /// The main purpose of this function is to support websockets.
    /// If you detect that the request wants to use some kind of protocol upgrade, you can
    ///  call this function to obtain full control of the socket stream.
    ///
    /// If you call this on a non-websocket request, tiny-http will wait until this `Stream` object
    ///  is destroyed before continuing to read or write on the socket. Therefore you should always
    ///  destroy it as soon as possible.
    pub fn upgrade<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> Box<dyn ReadWrite + Send> {
        use crate::util::CustomStream;

        // PATCH(knowledge-vault): the rest of the body first (bounded), then
        // the 101 within the response deadline; then the connection belongs
        // to the caller, who sets its own timeouts.
        let rest = self.data_reader.take().and_then(Body::into_rest);
        self.state.start_response();
        response
            .raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                false,
                Some(protocol),
            )
            .ok(); // TODO: unused result

        self.response_writer.as_mut().unwrap().flush().ok(); // TODO: unused result
        self.state.clear();

        let rest = rest.unwrap_or_else(|| Box::new(io::empty()));
        let stream = CustomStream::new(rest, self.extract_writer_impl());
        if let Some(sender) = self.notify_when_responded.take() {
            let stream = NotifyOnDrop {
                sender,
                inner: stream,
            };
            Box::new(stream) as Box<dyn ReadWrite + Send>
        } else {
            Box::new(stream) as Box<dyn ReadWrite + Send>
        }
    }

    /// PATCH(knowledge-vault): whether [`Request::upgrade_with_stream`] will
    /// return the socket.
    pub fn has_upgrade_stream(&self) -> bool {
        self.raw_stream.is_some()
    }

    /// PATCH(knowledge-vault): like [`Request::upgrade`], and also returns a
    /// clone of the underlying TCP socket when the upgrade request was the
    /// first request of its connection (as WebSocket clients do). With it the
    /// caller can set timeouts, shut the socket down, and write from one
    /// thread while another blocks reading the returned stream.
    pub fn upgrade_with_stream<R: Read>(
        mut self,
        protocol: &str,
        response: Response<R>,
    ) -> (Box<dyn ReadWrite + Send>, Option<std::net::TcpStream>) {
        let raw = self.raw_stream.take();
        (self.upgrade(protocol, response), raw)
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # extern crate rustc_serialize;
    /// # extern crate tiny_http;
    /// # use rustc_serialize::json::Json;
    /// # use std::io::Read;
    /// # fn get_content_type(_: &tiny_http::Request) -> &'static str { "" }
    /// # fn main() {
    /// # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// if get_content_type(&request) == "application/json" {
    ///     let mut content = String::new();
    ///     request.as_reader().read_to_string(&mut content).unwrap();
    ///     let json: Json = content.parse().unwrap();
    /// }
    /// # }
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            // PATCH(knowledge-vault): the body's deadline starts now.
            self.state.start_body();
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                None,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Turns the `Request` into a writer.
    ///
    /// The writer has a raw access to the stream to the user.
    /// This function is useful for things like CGI.
    ///
    /// Note that the destruction of the `Writer` object may trigger
    /// some events. For exemple if a client has sent multiple requests and the requests
    /// have been processed in parallel, the destruction of a writer will trigger
    /// the writing of the next response.
    /// Therefore you should always destroy the `Writer` as soon as possible.
    #[inline]
    pub fn into_writer(mut self) -> Box<dyn Write + Send + 'static> {
        let writer = self.extract_writer_impl();
        if let Some(sender) = self.notify_when_responded.take() {
            let writer = NotifyOnDrop {
                sender,
                inner: writer,
            };
            Box::new(writer) as Box<dyn Write + Send + 'static>
        } else {
            writer
        }
    }

    /// Extract the response `Writer` object from the Request, dropping this `Writer` has the same side effects
    /// as the object returned by `into_writer` above.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let res = self.respond_impl(response);
        if let Some(sender) = self.notify_when_responded.take() {
            sender.send(()).unwrap();
        }
        res
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();

        let do_not_send_body = self.method == Method::Head;

        // PATCH(knowledge-vault): the response has its own deadline, and
        // says `Connection: close` when the connection ends after it (the
        // client asked, or the body cannot be drained).
        self.state.start_response();
        let mut response = response;
        let unread = self.data_reader.as_ref().is_some_and(Body::too_much_left);
        if self.closing || self.must_send_continue || unread {
            response.close_connection();
        }

        Self::ignore_client_closing_errors(response.raw_print(
            writer.by_ref(),
            self.http_version.clone(),
            &self.headers,
            do_not_send_body,
            None,
        ))?;

        Self::ignore_client_closing_errors(writer.flush())
    }

    fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
        result.or_else(|err| match err.kind() {
            ErrorKind::BrokenPipe => Ok(()),
            ErrorKind::ConnectionAborted => Ok(()),
            ErrorKind::ConnectionRefused => Ok(()),
            ErrorKind::ConnectionReset => Ok(()),
            _ => Err(err),
        })
    }

    pub(crate) fn with_notify_sender(mut self, sender: Sender<()>) -> Self {
        self.notify_when_responded = Some(sender);
        self
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // PATCH(knowledge-vault): a client still waiting for `100 Continue`
        // sends no body: close the connection instead of draining it.
        if self.must_send_continue {
            if let Some(body) = self.data_reader.as_mut() {
                body.abandon();
            }
        }
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
            if let Some(sender) = self.notify_when_responded.take() {
                sender.send(()).unwrap();
            }
        }
    }
}

/// Dummy trait that regroups the `Read` and `Write` traits.
///
/// Automatically implemented on all types that implement both `Read` and `Write`.
pub trait ReadWrite: Read + Write {}
impl<T> ReadWrite for T where T: Read + Write {}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
