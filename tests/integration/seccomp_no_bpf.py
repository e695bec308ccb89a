#!/usr/bin/env python3
"""Run a command with bpf() refused by seccomp (EPERM), as podman 4's default profile
does for a container without CAP_SYS_ADMIN. Usage: seccomp_no_bpf.py CMD ARGS..."""
import ctypes, os, platform, struct, sys

NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
if NR_BPF is None:
    print("SKIP: seccomp_no_bpf: unknown syscall number on " + platform.machine())
    sys.exit(77)
# BPF_LD|W|ABS k=0 (nr); JEQ k=NR_BPF jt=0 jf=1; RET ERRNO|EPERM; RET ALLOW
ins = [(0x20, 0, 0, 0), (0x15, 0, 1, NR_BPF), (0x06, 0, 0, 0x00050000 | 1),
       (0x06, 0, 0, 0x7fff0000)]
code = b"".join(struct.pack("HBBI", *i) for i in ins)
buf = ctypes.create_string_buffer(code)
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(len(ins), ctypes.cast(buf, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
if libc.prctl(38, 1, None, 0, 0) or libc.prctl(22, 2, ctypes.byref(prog), 0, 0):  # NO_NEW_PRIVS, SECCOMP filter
    print("SKIP: seccomp_no_bpf: prctl failed: " + os.strerror(ctypes.get_errno()))
    sys.exit(77)
os.execvp(sys.argv[1], sys.argv[1:])
