//! `wait`: Python's `multiprocessing.connection.wait`.

use core::time::Duration;
use std::os::fd::AsFd;

use super::PipeError;
use crate::sys::io::{PollFd, PollFlags};

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: no limit; `Some(Duration::ZERO)`: do not wait), and returns the
/// ready ones, in the order given (Python's
/// `multiprocessing.connection.wait(object_list, timeout)`; an empty list
/// after the timeout).
///
/// An object is anything with a descriptor ([`AsFd`]): a [`Connection`](super::Connection)
/// is ready when a message (or end-of-file) can be received, a
/// [`Listener`](super::Listener) when a client waits to be accepted, a
/// process sentinel when the process has ended. Pass references, or
/// `&dyn AsFd` to mix kinds:
///
/// ```
/// use std::os::fd::AsFd;
/// use std::time::Duration;
/// use procshare::{wait, Family, Listener, Pipe};
/// let (a, b) = Pipe::<u8>::new(true).unwrap();
/// let l = Listener::new(Family::Unix, None).unwrap();
/// let objs: [&dyn AsFd; 3] = [&a, &b, &l];
/// assert!(wait(objs, Some(Duration::ZERO)).unwrap().is_empty());
/// b.send(&1).unwrap();
/// let ready = wait([&a, &b], None).unwrap();
/// assert!(ready.len() == 1 && std::ptr::eq(ready[0], &a));
/// ```
pub fn wait<I, O>(objects: I, timeout: Option<Duration>) -> Result<Vec<O>, PipeError>
where
    I: IntoIterator<Item = O>,
    O: AsFd,
{
    let objects: Vec<O> = objects.into_iter().collect();
    let ready: Vec<bool> = {
        let mut fds: Vec<PollFd<'_>> = objects
            .iter()
            .map(|o| PollFd::new(o, PollFlags::IN))
            .collect();
        crate::sys::io::poll(&mut fds, timeout)?;
        fds.iter().map(|p| !p.revents().is_empty()).collect()
    };
    Ok(objects
        .into_iter()
        .zip(ready)
        .filter_map(|(o, r)| r.then_some(o))
        .collect())
}
