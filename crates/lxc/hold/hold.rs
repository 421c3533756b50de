//! `nexcage-hold GATE PROGRAM [ARG...]`: the start gate inside the container (used by the
//! proxmox-lxc backend). Run by LXC's init as the container's program, it blocks opening the FIFO
//! `GATE` until the shim's Start writes `start`, then `execvp`s PROGRAM with the process's
//! environment, signal dispositions and mask untouched (no Rust runtime start-up: `no_main`),
//! so the program starts exactly as if LXC's init had run it. Anything else read from the gate
//! (`abort`, from Kill or Delete before Start) exits 1; a failed exec exits 127, as a shell does.
//!
//! Built statically by `build.rs` (it is bound into containers whose root file system has no
//! libc of the host's) and embedded in the lxc backend.
#![no_main]

use std::ffi::{c_char, c_int};

extern "C" {
    fn open(path: *const c_char, flags: c_int, ...) -> c_int;
    fn read(fd: c_int, buf: *mut u8, n: usize) -> isize;
    fn close(fd: c_int) -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn write(fd: c_int, buf: *const u8, n: usize) -> isize;
    fn strlen(s: *const c_char) -> usize;
    fn strerror(errnum: c_int) -> *const c_char;
    fn __errno_location() -> *mut c_int;
    fn _exit(code: c_int) -> !;
}

const O_RDONLY_CLOEXEC: c_int = 0o2000000;
const EINTR: c_int = 4;

unsafe fn say(parts: &[*const c_char]) {
    let mut line = Vec::with_capacity(256);
    for p in parts {
        line.extend_from_slice(std::slice::from_raw_parts(*p as *const u8, strlen(*p)));
    }
    line.push(b'\n');
    write(2, line.as_ptr(), line.len());
}

#[no_mangle]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    if argc < 3 {
        say(&[c"usage: nexcage-hold GATE PROGRAM [ARG...]".as_ptr()]);
        _exit(125)
    }
    let gate = *argv.add(1);
    let fd = loop {
        let fd = open(gate, O_RDONLY_CLOEXEC);
        if fd >= 0 || *__errno_location() != EINTR {
            break fd;
        }
    };
    if fd < 0 {
        let e = *__errno_location();
        say(&[c"nexcage-hold: open ".as_ptr(), gate, c": ".as_ptr(), strerror(e)]);
        _exit(1)
    }
    let mut buf = [0u8; 16];
    let mut got = 0usize;
    while got < buf.len() {
        let n = read(fd, buf.as_mut_ptr().add(got), buf.len() - got);
        if n < 0 && *__errno_location() == EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
        if buf[..got].contains(&b'\n') {
            break;
        }
    }
    close(fd);
    if &buf[..got] != b"start\n" {
        _exit(1)
    }
    let program = *argv.add(2);
    execvp(program, argv.add(2));
    let e = *__errno_location();
    say(&[c"nexcage: exec ".as_ptr(), program, c": ".as_ptr(), strerror(e)]);
    _exit(127)
}
