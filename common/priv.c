#include "common/priv.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

struct priv_id {
	uid_t uid;
	gid_t gid;
	bool change;		/* started as root: become uid and gid */
	char user[CFG_USER_MAX + 1];
};

static const char *const part_names[] = {"api", "proxy"};
static struct priv_id ids[2];
static bool resolved;

static int resolve_one(const char *sect, const char *user, const char *group,
		       struct priv_id *out, char *err, size_t errlen)
{
	const struct passwd *pw;
	const struct group *gr;
	uid_t euid = geteuid();
	gid_t egid = getegid();

	memset(out, 0, sizeof(*out));
	out->uid = euid;
	out->gid = egid;
	if (!user[0])
		return 0;
	pw = getpwnam(user);
	if (!pw) {
		err_set(err, errlen, "[%s] user = %s: no such user (useradd "
			"--system --user-group --no-create-home %s makes one)",
			sect, user, user);
		return -ENOENT;
	}
	out->uid = pw->pw_uid;
	out->gid = pw->pw_gid;
	if (group[0]) {
		gr = getgrnam(group);
		if (!gr) {
			err_set(err, errlen, "[%s] group = %s: no such group", sect,
				group);
			return -ENOENT;
		}
		out->gid = gr->gr_gid;
	}
	if (euid != 0) {
		if (out->uid == euid && out->gid == egid)
			return 0;	/* already that user */
		err_set(err, errlen,
			"[%s] user = %s: acme-edge runs as uid %u, gid %u, not as "
			"root, so it cannot become uid %u, gid %u; start it as "
			"root, or remove the key",
			sect, user, (unsigned)euid, (unsigned)egid,
			(unsigned)out->uid, (unsigned)out->gid);
		return -EPERM;
	}
	out->change = out->uid != 0 || out->gid != 0;
	snprintf(out->user, sizeof(out->user), "%s", user);
	return 0;
}

int priv_resolve(const struct cfg *cfg, char *err, size_t errlen)
{
	struct priv_id next[2];
	int rc;

	rc = resolve_one("api", cfg->api.user, cfg->api.group, &next[PRIV_API],
			 err, errlen);
	if (!rc)
		rc = resolve_one("proxy", cfg->proxy.user, cfg->proxy.group,
				 &next[PRIV_PROXY], err, errlen);
	if (rc)
		return rc;
	memcpy(ids, next, sizeof(ids));
	resolved = true;
	return 0;
}

static const struct priv_id *id_of(enum priv_part part)
{
	if (!resolved) {
		for (int i = 0; i < 2; i++) {
			memset(&ids[i], 0, sizeof(ids[i]));
			ids[i].uid = geteuid();
			ids[i].gid = getegid();
		}
		resolved = true;
	}
	return &ids[part];
}

uid_t priv_uid(enum priv_part part)
{
	return id_of(part)->uid;
}

gid_t priv_gid(enum priv_part part)
{
	return id_of(part)->gid;
}

struct shm_owner priv_owner(enum priv_part part)
{
	enum priv_part reader = part == PRIV_API ? PRIV_PROXY : PRIV_API;

	return (struct shm_owner){.uid = id_of(part)->uid,
				  .gid = id_of(reader)->gid};
}

/* Any capability still effective, permitted or ambient? */
static bool caps_left(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return true;
	for (int i = 0; i < 2; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return true;
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) == 1)
			return true;
	return false;
}

/* Empties every capability set this process may still hold. */
static int clear_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return (int)syscall(SYS_capset, &h, d);
}

/* Is the process exactly id, with no way back to root? */
static const char *not_dropped(const struct priv_id *id)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;

	if (getresuid(&r, &e, &s) != 0 || r != id->uid || e != id->uid ||
	    s != id->uid)
		return "user ids";
	if (getresgid(&rg, &eg, &sg) != 0 || rg != id->gid || eg != id->gid ||
	    sg != id->gid)
		return "group ids";
	gid_t groups[NGROUPS_MAX];
	int n = getgroups(NGROUPS_MAX, groups);

	for (int i = 0; i < n; i++)
		if (groups[i] == 0 && id->gid != 0)
			return "group root among the supplementary groups";
	if (n < 0)
		return "supplementary groups";
	if (caps_left())
		return "capabilities";
	/* And the kernel agrees: root is refused when asked for it back. */
	if (id->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return "setuid(0) succeeded";
	if (id->gid != 0 && (setgid(0) == 0 || setegid(0) == 0))
		return "setgid(0) succeeded";
	return NULL;
}

int priv_drop(enum priv_part part)
{
	const struct priv_id *id = id_of(part);
	const char *name = part_names[part];
	const char *left;

	if (!id->change) {
		if (geteuid() == 0)
			log_warn("%s: running as root: set [%s] user to a user of "
				 "its own to drop root once listening", name, name);
		return 0;
	}
	/*
	 * Groups first: once the user is not root, it may change none. Its
	 * supplementary groups are those /etc/group gives it, nothing of
	 * root's (a proxy user may need one: kernel.io_uring_group).
	 */
	if (initgroups(id->user, id->gid) != 0 ||
	    setresgid(id->gid, id->gid, id->gid) != 0 ||
	    setresuid(id->uid, id->uid, id->uid) != 0) {
		log_err("%s: cannot become %s (uid %u, gid %u): %s", name, id->user,
			(unsigned)id->uid, (unsigned)id->gid, strerror(errno));
		return -1;
	}
	/*
	 * The kernel clears capabilities when every user id leaves root,
	 * unless securebits say otherwise: clear them in any case, and never
	 * gain any through exec either.
	 */
	if (caps_left() && clear_caps() != 0) {
		log_err("%s: cannot drop capabilities: %s", name, strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		log_err("%s: PR_SET_NO_NEW_PRIVS: %s", name, strerror(errno));
		return -1;
	}
	left = not_dropped(id);
	if (left) {
		log_err("%s: became %s but root could be had back (%s); stopping",
			name, id->user, left);
		return -1;
	}
	/* Only the API reads the clients file, and only its user may. */
	if (part == PRIV_PROXY)
		cfg_skip_clients_file();
	if (part == PRIV_PROXY && id->uid == id_of(PRIV_API)->uid)
		log_warn("proxy: runs as the API's user %s, so it could write the "
			 "token store: give [proxy] user a user of its own",
			 id->user);
	log_info("%s: running as %s (uid %u, gid %u)", name, id->user,
		 (unsigned)id->uid, (unsigned)id->gid);
	return 0;
}
