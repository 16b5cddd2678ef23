#include "common/shmfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* path's directory into buf ("." when path has no slash, "/" for "/x"). */
static int dir_of(const char *path, char *buf, size_t cap, const char **name)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		*name = path;
		snprintf(buf, cap, ".");
		return 0;
	}
	*name = slash + 1;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(buf, path, n);
	buf[n] = '\0';
	return 0;
}

int shm_dir_open(const char *path, uid_t owner, const char **name, char *err,
		 size_t errlen)
{
	char dir[4096];
	struct stat sb;
	int fd, rc;

	rc = dir_of(path, dir, sizeof(dir), name);
	if (rc || **name == '\0') {
		err_set(err, errlen, "%s: not a file name", path);
		return rc ? rc : -EINVAL;
	}
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		err_set(err, errlen, "%s: directory %s: %s", path, dir,
			strerror(errno));
		return rc;
	}
	if (fstat(fd, &sb) != 0) {
		rc = -errno;
		err_set(err, errlen, "%s: directory %s: %s", path, dir,
			strerror(errno));
		close(fd);
		return rc;
	}
	if (sb.st_uid != 0 && sb.st_uid != owner) {
		err_set(err, errlen,
			"%s: refused: its directory %s belongs to uid %u, neither "
			"root nor uid %u that writes the file, so that user could "
			"replace it",
			path, dir, (unsigned)sb.st_uid, (unsigned)owner);
		close(fd);
		return -EPERM;
	}
	if ((sb.st_mode & (S_IWGRP | S_IWOTH)) && !(sb.st_mode & S_ISVTX)) {
		err_set(err, errlen,
			"%s: refused: its directory %s (mode %04o) lets group or "
			"others add, remove and rename files and is not sticky; use "
			"a private directory such as /run/acme-edge",
			path, dir, (unsigned)(sb.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* What every opened file must be; 0 or -EPERM with the reason. */
static int check_file(int fd, const char *path, uid_t owner, char *err,
		      size_t errlen)
{
	struct stat sb;

	if (fstat(fd, &sb) != 0) {
		int rc = -errno;
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	if (!S_ISREG(sb.st_mode)) {
		err_set(err, errlen, "%s: refused: not a regular file", path);
		return -EPERM;
	}
	if (sb.st_uid != owner) {
		err_set(err, errlen,
			"%s: refused: the file belongs to uid %u, not to uid %u "
			"that writes it; another user may have planted it: remove "
			"it while the gateway is stopped",
			path, (unsigned)sb.st_uid, (unsigned)owner);
		return -EPERM;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		err_set(err, errlen,
			"%s: refused: mode %04o lets group or others write it",
			path, (unsigned)(sb.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/*
 * A file this process just created: mode first (while this process still
 * owns it), then owner and group, so that no capability beyond CAP_CHOWN
 * is needed when root creates it for another user.
 */
static int give_away(int fd, const char *path, const struct shm_owner *own,
		     mode_t mode, char *err, size_t errlen)
{
	struct stat sb;

	if (fchmod(fd, mode) != 0 || fstat(fd, &sb) != 0)
		goto fail;
	if ((sb.st_uid != own->uid || sb.st_gid != own->gid) &&
	    fchown(fd, sb.st_uid != own->uid ? own->uid : (uid_t)-1,
		   sb.st_gid != own->gid ? own->gid : (gid_t)-1) != 0)
		goto fail;
	return 0;
fail:;
	int rc = -errno;
	err_set(err, errlen, "%s: cannot give it to uid %u, gid %u, mode %04o: %s",
		path, (unsigned)own->uid, (unsigned)own->gid, (unsigned)mode,
		strerror(errno));
	return rc;
}

int shm_openat(int dirfd, const char *path, const char *name, int flags,
	       const struct shm_owner *own, mode_t create_mode, char *err,
	       size_t errlen)
{
	int fd = -1, rc;

	/* O_NONBLOCK: a FIFO planted under the name must not hang the open. */
	flags |= O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	if (flags & O_CREAT) {
		fd = openat(dirfd, name, flags | O_EXCL, 0600);
		if (fd >= 0) {
			rc = give_away(fd, path, own, SHM_FILE_MODE & create_mode,
				       err, errlen);
			if (rc) {
				unlinkat(dirfd, name, 0);
				close(fd);
				return rc;
			}
		} else if (errno != EEXIST || (flags & O_EXCL)) {
			goto fail;
		}
		flags &= ~O_CREAT;
	}
	if (fd < 0)
		fd = openat(dirfd, name, flags);
	if (fd < 0)
		goto fail;
	rc = check_file(fd, path, own->uid, err, errlen);
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
fail:
	rc = -errno;
	if (errno == ELOOP) {
		err_set(err, errlen, "%s: refused: a symbolic link", path);
		return -EPERM;
	}
	err_set(err, errlen, "%s: %s", path, strerror(errno));
	return rc;
}

int shm_create_temp(int dirfd, const char *path, const struct shm_owner *own,
		    char *tmp, size_t tmpcap, char *err, size_t errlen)
{
	const char *name = strrchr(path, '/');
	char full[4096 + 64];
	uint64_t r;

	name = name ? name + 1 : path;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		int rc = -errno;
		err_set(err, errlen, "%s: getrandom: %s", path, strerror(errno));
		return rc;
	}
	if ((size_t)snprintf(tmp, tmpcap, "%s.new.%016llx", name,
			     (unsigned long long)r) >= tmpcap) {
		err_set(err, errlen, "%s: name too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(full, sizeof(full), "%s.new.%016llx", path, (unsigned long long)r);
	return shm_openat(dirfd, full, tmp, O_RDWR | O_CREAT | O_EXCL, own,
			  SHM_FILE_MODE, err, errlen);
}

int shm_dir_create(const char *path, gid_t group, char *err, size_t errlen)
{
	char dir[4096];
	const char *name;
	int rc = dir_of(path, dir, sizeof(dir), &name);

	if (rc) {
		err_set(err, errlen, "%s: name too long", path);
		return rc;
	}
	if (mkdir(dir, 0750) != 0) {
		if (errno == EEXIST)
			return 0;
		rc = -errno;
		err_set(err, errlen, "%s: cannot create directory %s: %s", path,
			dir, strerror(errno));
		return rc;
	}
	/*
	 * Created just now, so it is ours to set up (the mode despite umask,
	 * the group). Through a descriptor that is surely the directory made
	 * above: never a symlink someone put in its place.
	 */
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat sb;

	if (fd < 0 || fstat(fd, &sb) != 0)
		goto fail;
	if (sb.st_uid != geteuid()) {
		errno = EPERM;		/* swapped for someone else's */
		goto fail;
	}
	if (fchmod(fd, 0750) != 0 || fchown(fd, (uid_t)-1, group) != 0)
		goto fail;
	close(fd);
	return 0;
fail:
	rc = -errno;
	err_set(err, errlen, "%s: directory %s: cannot make it mode 0750, group "
		"%u: %s", path, dir, (unsigned)group, strerror(-rc));
	if (fd >= 0)
		close(fd);
	return rc;
}
