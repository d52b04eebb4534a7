//! The "fake ids" seccomp program: chown and the set*id/setgroups calls succeed without
//! effect, as Charliecloud's `--seccomp` does, so package managers that chown files or drop
//! privileges work where only one id is mapped (single-id mode).
//!
//! Owns: the classic-BPF program (pure data, built here and tested without loading it).
//! Loading it is `sys::install_seccomp`, after `no_new_privs`, right before the exec. Never
//! denies or kills anything: a call of another architecture than those listed (x32, a
//! foreign ABI) and every other syscall is allowed untouched. Invariant: every listed call
//! returns 0 from the filter (SECCOMP_RET_ERRNO with errno 0), so the kernel never sees it.

/// AUDIT_ARCH_* of <linux/audit.h> (libc does not carry them).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// The faked calls of the 64-bit x86 ABI (numbers from libc for this target).
#[cfg(target_arch = "x86_64")]
const NATIVE: (u32, &[libc::c_long]) = (
    AUDIT_ARCH_X86_64,
    &[
        libc::SYS_chown,
        libc::SYS_fchown,
        libc::SYS_lchown,
        libc::SYS_fchownat,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setfsuid,
        libc::SYS_setfsgid,
        libc::SYS_setgroups,
    ],
);

/// The faked calls of arm64 (which has no chown/lchown: libc uses fchownat).
#[cfg(target_arch = "aarch64")]
const NATIVE: (u32, &[libc::c_long]) = (
    AUDIT_ARCH_AARCH64,
    &[
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setfsuid,
        libc::SYS_setfsgid,
        libc::SYS_setgroups,
    ],
);

/// i386 programs on an x86_64 kernel (int 0x80): the 16-bit and the `32` variants
/// (arch/x86/entry/syscalls/syscall_32.tbl).
const I386: (u32, &[libc::c_long]) = (
    AUDIT_ARCH_I386,
    &[
        16,  // lchown
        23,  // setuid
        46,  // setgid
        70,  // setreuid
        71,  // setregid
        81,  // setgroups
        95,  // fchown
        138, // setfsuid
        139, // setfsgid
        164, // setresuid
        170, // setresgid
        182, // chown
        198, // lchown32
        203, // setreuid32
        204, // setregid32
        206, // setgroups32
        207, // fchown32
        208, // setresuid32
        210, // setresgid32
        212, // chown32
        213, // setuid32
        214, // setgid32
        215, // setfsuid32
        216, // setfsgid32
        298, // fchownat
    ],
);

/// The architectures the filter knows on this target, native first.
fn arches() -> Vec<(u32, &'static [libc::c_long])> {
    let mut v = vec![NATIVE];
    if cfg!(target_arch = "x86_64") {
        v.push(I386);
    }
    v
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: usize, jf: usize) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: jt as u8,
        jf: jf as u8,
        k,
    }
}

/// The program: per known architecture, `arch == A` -> load the number -> one `jeq` per
/// faked call (to FAKE) -> ALLOW; an unknown architecture falls through to ALLOW.
pub(crate) fn fake_ids_program() -> Vec<libc::sock_filter> {
    let ld = |off| stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, off);
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let arches = arches();
    let total: usize = 1 + arches.iter().map(|(_, n)| n.len() + 3).sum::<usize>() + 2;
    let allow = total - 2;
    let fake = total - 1;
    let mut p = vec![ld(ARCH_OFFSET)];
    for (arch, nrs) in arches {
        // skip this block (ld nr, the jeqs, ja) to the next `jeq arch`: A still holds arch
        p.push(jump(jeq, arch, 0, nrs.len() + 2));
        p.push(ld(NR_OFFSET));
        for &nr in nrs {
            let here = p.len();
            p.push(jump(jeq, nr as u32, fake - here - 1, 0));
        }
        let here = p.len();
        p.push(stmt(
            libc::BPF_JMP | libc::BPF_JA,
            (allow - here - 1) as u32,
        ));
    }
    p.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW));
    p.push(stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO));
    debug_assert_eq!(p.len(), total);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the instructions the program uses.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut a = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let code = u32::from(i.code);
            pc += 1;
            if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS {
                a = if i.k == ARCH_OFFSET { arch } else { nr };
            } else if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K {
                pc += usize::from(if a == i.k { i.jt } else { i.jf });
            } else if code == libc::BPF_JMP | libc::BPF_JA {
                pc += i.k as usize;
            } else if code == libc::BPF_RET | libc::BPF_K {
                return i.k;
            } else {
                panic!("unexpected instruction {code:#x}");
            }
        }
    }

    #[test]
    fn listed_calls_are_faked_others_allowed() {
        let p = fake_ids_program();
        let (native, nrs) = NATIVE;
        for &nr in nrs {
            assert_eq!(run(&p, native, nr as u32), libc::SECCOMP_RET_ERRNO, "{nr}");
        }
        for nr in [libc::SYS_read, libc::SYS_execve, libc::SYS_getuid] {
            assert_eq!(run(&p, native, nr as u32), libc::SECCOMP_RET_ALLOW, "{nr}");
        }
        // an unknown architecture is never touched
        assert_eq!(run(&p, 0x1234, nrs[0] as u32), libc::SECCOMP_RET_ALLOW);
        if cfg!(target_arch = "x86_64") {
            // i386: chown32 faked, getuid32 (199) allowed
            assert_eq!(run(&p, AUDIT_ARCH_I386, 212), libc::SECCOMP_RET_ERRNO);
            assert_eq!(run(&p, AUDIT_ARCH_I386, 199), libc::SECCOMP_RET_ALLOW);
        }
    }
}
