/*
 * seccomp_profile PROFILE.json PROGRAM [ARGS...]: applies a seccomp
 * profile in Docker's JSON format with libseccomp, as Docker itself does,
 * then execs PROGRAM. Lets the tests prove deploy/seccomp-io_uring.json on
 * a machine with no container engine.
 *
 * Understood: defaultAction and defaultErrnoRet, and syscalls[] entries of
 * names[] with action SCMP_ACT_ALLOW or SCMP_ACT_ERRNO (errnoRet). Entries
 * with argument conditions or other actions are refused rather than
 * half-applied, and so is a name libseccomp does not know: a profile this
 * tool cannot apply exactly is a failed test, not a weaker one.
 */
#include <errno.h>
#include <jansson.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int action_of(const char *name, json_t *errno_ret, uint32_t *out)
{
	if (strcmp(name, "SCMP_ACT_ALLOW") == 0) {
		*out = SCMP_ACT_ALLOW;
		return 0;
	}
	if (strcmp(name, "SCMP_ACT_ERRNO") == 0) {
		int e = errno_ret ? (int)json_integer_value(errno_ret) : EPERM;
		*out = SCMP_ACT_ERRNO((uint16_t)e);
		return 0;
	}
	return -1;
}

int main(int argc, char **argv)
{
	json_error_t jerr;
	json_t *prof, *rules, *rule;
	scmp_filter_ctx ctx;
	uint32_t def;
	size_t i;

	if (argc < 3) {
		fprintf(stderr, "usage: seccomp_profile PROFILE.json PROGRAM [ARGS...]\n");
		return 2;
	}
	prof = json_load_file(argv[1], 0, &jerr);
	if (!prof) {
		fprintf(stderr, "%s:%d: %s\n", argv[1], jerr.line, jerr.text);
		return 2;
	}
	if (action_of(json_string_value(json_object_get(prof, "defaultAction")) ?: "",
		      json_object_get(prof, "defaultErrnoRet"), &def) != 0) {
		fprintf(stderr, "%s: unsupported defaultAction\n", argv[1]);
		return 2;
	}
	ctx = seccomp_init(def);
	if (!ctx)
		return 2;
	rules = json_object_get(prof, "syscalls");
	json_array_foreach(rules, i, rule) {
		json_t *names = json_object_get(rule, "names"), *n;
		uint32_t act;
		size_t j;

		if (json_object_get(rule, "args") &&
		    json_array_size(json_object_get(rule, "args")) > 0) {
			fprintf(stderr, "%s: rule %zu has argument conditions\n",
				argv[1], i);
			return 2;
		}
		if (action_of(json_string_value(json_object_get(rule, "action")) ?: "",
			      json_object_get(rule, "errnoRet"), &act) != 0) {
			fprintf(stderr, "%s: rule %zu: unsupported action\n", argv[1], i);
			return 2;
		}
		json_array_foreach(names, j, n) {
			int nr = seccomp_syscall_resolve_name(json_string_value(n));
			if (nr == __NR_SCMP_ERROR) {
				fprintf(stderr, "%s: unknown system call \"%s\"\n", argv[1],
					json_string_value(n));
				return 2;
			}
			if (act != def && seccomp_rule_add(ctx, act, nr, 0) != 0) {
				fprintf(stderr, "%s: cannot add \"%s\"\n", argv[1],
					json_string_value(n));
				return 2;
			}
		}
	}
	if (seccomp_load(ctx) != 0) {
		fprintf(stderr, "seccomp_load failed\n");
		return 2;
	}
	seccomp_release(ctx);
	json_decref(prof);
	execvp(argv[2], argv + 2);
	perror(argv[2]);
	return 127;
}
