/*
 * Opening the gateway's shared-memory files (the token store, its lock,
 * the proxy statistics file) without trusting their path.
 *
 * Each file has one writer, and whoever can write it decides what the
 * gateway answers. So a file is used only when:
 *   - it was opened without following a symlink in its last component, and
 *     is a regular file;
 *   - it belongs to the user expected to write it, and neither its group
 *     nor others may write it (checked with fstat on what was opened, so
 *     nothing can be swapped in between);
 *   - the directory holding it (opened once, every later step relative to
 *     that descriptor) belongs to root or to that same user, and nobody else
 *     may add, remove or rename entries in it: it is writable by neither
 *     group nor others, or it has the sticky bit, where only an entry's
 *     owner, the directory's owner and root may remove or rename an entry
 *     (like /dev/shm). In a sticky directory another user can still create
 *     a name first; the owner check above refuses that file.
 * Every refusal names the path and the cause. Files are created mode 0640,
 * owned by the writer and by the group of its readers, under a name nobody
 * can predict, opened with O_EXCL, and renamed into place when complete.
 */
#ifndef EDGE_SHMFILE_H
#define EDGE_SHMFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Who a shared file belongs to. */
struct shm_owner {
	uid_t uid;		/* its one writer */
	gid_t gid;		/* its readers' group: they may read it, no more */
};

#define SHM_FILE_MODE 0640

/*
 * Opens and checks the directory holding path for a file that owner
 * writes (see the top). Returns the directory's descriptor (O_PATH) and
 * points *name at path's last component, or -errno with a message in err.
 */
int shm_dir_open(const char *path, uid_t owner, const char **name, char *err,
		 size_t errlen);

/*
 * Opens name in dirfd (path is its full name, for messages) with flags
 * (O_RDONLY or O_RDWR, plus O_CREAT to create it when absent: then owned
 * by own and mode SHM_FILE_MODE masked by create_mode), never following a
 * symlink, and checks it belongs to own->uid and is writable by nobody
 * else. Returns the descriptor, or -errno (-EPERM: refused) with a message.
 */
int shm_openat(int dirfd, const char *path, const char *name, int flags,
	       const struct shm_owner *own, mode_t create_mode, char *err,
	       size_t errlen);

/*
 * Creates a new file beside path in dirfd, under a random name with
 * ".new." after path's last component, owned by own, mode SHM_FILE_MODE.
 * Returns its descriptor and its name in tmp, or -errno with a message.
 */
int shm_create_temp(int dirfd, const char *path, const struct shm_owner *own,
		    char *tmp, size_t tmpcap, char *err, size_t errlen);

/*
 * Creates the directory that will hold path when it is absent (its last
 * component only: the parent must exist), mode 0750, group group, so that
 * a gateway started by hand finds its private directory as systemd's
 * RuntimeDirectory= would make it. Returns 0 (also when it existed: then
 * it is left as it is, and shm_dir_open judges it), or -errno with a
 * message in err.
 */
int shm_dir_create(const char *path, gid_t group, char *err, size_t errlen);

#endif
