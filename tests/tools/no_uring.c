/*
 * no_uring ENOSYS|EPERM PROGRAM [ARGS...]
 *
 * Runs PROGRAM where io_uring is unavailable for real, as under Docker's
 * or containerd's default seccomp profile: a seccomp-BPF filter answers
 * io_uring_setup, io_uring_enter and io_uring_register with the errno
 * given, allows every other system call, and is inherited across execve
 * and fork. A system call made through another ABI than this build's
 * (i386 int 0x80 on x86_64) kills the process rather than slipping past
 * the filter; x32 numbers of the three calls are refused as well.
 *
 * Needs no privilege: PR_SET_NO_NEW_PRIVS first, then the filter.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define THIS_ARCH AUDIT_ARCH_RISCV64
#else
#error "no_uring: add this architecture's AUDIT_ARCH_*"
#endif

/* Same numbers on every architecture (the unified syscall table). */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

#define X32_SYSCALL_BIT 0x40000000u

static int usage(void)
{
	fprintf(stderr, "usage: no_uring ENOSYS|EPERM PROGRAM [ARGS...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	int err;

	if (argc < 3)
		return usage();
	if (strcmp(argv[1], "ENOSYS") == 0)
		err = ENOSYS;
	else if (strcmp(argv[1], "EPERM") == 0)
		err = EPERM;
	else
		return usage();

	struct sock_filter f[] = {
		/* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
				 offsetof(struct seccomp_data, arch)),
		/* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0),
		/* 2 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		/* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
				 offsetof(struct seccomp_data, nr)),
		/* 4 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~X32_SYSCALL_BIT),
		/* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
		/* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
		/* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
		/* 8 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* 9 */ BPF_STMT(BPF_RET | BPF_K,
				 SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
	};
	struct sock_fprog prog = {
		.len = (unsigned short)(sizeof(f) / sizeof(f[0])),
		.filter = f,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		perror("no_uring: prctl(PR_SET_NO_NEW_PRIVS)");
		return 1;
	}
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0 &&
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
		perror("no_uring: seccomp");
		return 1;
	}
	execvp(argv[2], argv + 2);
	fprintf(stderr, "no_uring: %s: %s\n", argv[2], strerror(errno));
	return 127;
}
