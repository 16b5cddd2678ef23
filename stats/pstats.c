#include "stats/pstats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/edge.h"
#include "common/ident.h"
#include "common/log.h"
#include "common/shmfile.h"

#define PSTATS_MAGIC "ACMEPST\0"

struct pstats_hdr {
	char magic[8];
	uint32_t layout_version;
	uint32_t ncounters;
	uint32_t nworkers;
	uint32_t worker_size;
	int64_t started_ms;
	int32_t pid;
	char backend[20];
} __attribute__((aligned(64)));

/*
 * What the header says, copied once it is validated: the proxy (or anyone
 * who can write the file) may change the header after that, and a reader
 * that took nworkers from the mapping again would walk off its end.
 */
struct pstats {
	uint8_t *base;
	size_t len;
	struct pstats_hdr *hdr;
	struct pstats_worker *workers;
	unsigned nworkers;
	int64_t started_ms;
	char backend[sizeof(((struct pstats_hdr *)0)->backend)];
};

static const char *const metric_names[PS_COUNT] = {
#define PSTAT_NAME(id, name) name,
	PSTATS_COUNTERS(PSTAT_NAME)
#undef PSTAT_NAME
};

void pstats_path(const char *store_path, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s.proxy", store_path);
}

/* Takes the validated header's values into private memory (see struct pstats). */
static void keep_header(struct pstats *ps, const struct pstats_hdr *hdr)
{
	ps->nworkers = hdr->nworkers;
	ps->started_ms = hdr->started_ms;
	memcpy(ps->backend, hdr->backend, sizeof(ps->backend));
	ps->backend[sizeof(ps->backend) - 1] = '\0';
}

static size_t total_size(unsigned nworkers)
{
	return sizeof(struct pstats_hdr) +
	       (size_t)nworkers * sizeof(struct pstats_worker);
}

int pstats_create(const char *path, unsigned nworkers, const char *backend,
		  struct shm_owner own, struct pstats **out, char *err,
		  size_t errlen)
{
	char tmp[4096];
	struct pstats *ps;
	const char *name;
	size_t len = total_size(nworkers);
	int dirfd, fd, rc;

	if (nworkers == 0 || nworkers > PSTATS_WORKERS_MAX)
		return -EINVAL;
	dirfd = shm_dir_open(path, own.uid, &name, err, errlen);
	if (dirfd < 0)
		return dirfd;
	fd = shm_create_temp(dirfd, path, &own, tmp, sizeof(tmp), err, errlen);
	if (fd < 0) {
		close(dirfd);
		return fd;
	}
	if (ftruncate(fd, (off_t)len) != 0) {
		rc = -errno;
		err_set(err, errlen, "%s: cannot size %s: %s", path, tmp,
			strerror(errno));
		goto fail;
	}
	ps = calloc(1, sizeof(*ps));
	BUG_ON(!ps);
	ps->base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ps->base == MAP_FAILED) {
		rc = -errno;
		err_set(err, errlen, "%s: mmap: %s", path, strerror(errno));
		free(ps);
		goto fail;
	}
	close(fd);
	ps->len = len;
	ps->hdr = (struct pstats_hdr *)ps->base;
	ps->workers = (struct pstats_worker *)(ps->base + sizeof(struct pstats_hdr));
	memcpy(ps->hdr->magic, PSTATS_MAGIC, 8);
	ps->hdr->layout_version = PSTATS_LAYOUT_VERSION;
	ps->hdr->ncounters = PS_COUNT;
	ps->hdr->nworkers = nworkers;
	ps->hdr->worker_size = sizeof(struct pstats_worker);
	ps->hdr->started_ms = clock_wall_ms();
	ps->hdr->pid = (int32_t)getpid();
	snprintf(ps->hdr->backend, sizeof(ps->hdr->backend), "%s", backend);
	keep_header(ps, ps->hdr);
	/*
	 * Readers find a complete header or no file: rename last. Over
	 * whatever has the name (a previous proxy's file, or anything else:
	 * a symlink is replaced, never followed).
	 */
	if (renameat(dirfd, tmp, dirfd, name) != 0) {
		rc = -errno;
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		close(dirfd);
		pstats_close(ps);
		return rc;
	}
	close(dirfd);
	*out = ps;
	return 0;
fail:
	close(fd);
	unlinkat(dirfd, tmp, 0);
	close(dirfd);
	return rc;
}

int pstats_open(const char *path, uid_t writer, struct pstats **out,
		char *err, size_t errlen)
{
	const struct shm_owner own = {.uid = writer, .gid = (gid_t)-1};
	struct pstats_hdr hdr;
	struct stat sb;
	struct pstats *ps;
	const char *name;
	int dirfd, fd, rc;

	dirfd = shm_dir_open(path, writer, &name, err, errlen);
	if (dirfd < 0)
		return dirfd;
	fd = shm_openat(dirfd, path, name, O_RDONLY, &own, 0, err, errlen);
	close(dirfd);
	if (fd < 0)
		return fd;
	if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < sizeof(hdr) ||
	    pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    memcmp(hdr.magic, PSTATS_MAGIC, 8) != 0 ||
	    hdr.layout_version != PSTATS_LAYOUT_VERSION ||
	    hdr.ncounters != PS_COUNT ||
	    hdr.worker_size != sizeof(struct pstats_worker) ||
	    hdr.nworkers == 0 || hdr.nworkers > PSTATS_WORKERS_MAX ||
	    (size_t)sb.st_size != total_size(hdr.nworkers)) {
		err_set(err, errlen, "%s: not a proxy statistics file of layout %d",
			path, PSTATS_LAYOUT_VERSION);
		close(fd);
		return -EPROTO;
	}
	ps = calloc(1, sizeof(*ps));
	BUG_ON(!ps);
	ps->len = (size_t)sb.st_size;
	ps->base = mmap(NULL, ps->len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (ps->base == MAP_FAILED) {
		rc = -errno;
		err_set(err, errlen, "%s: mmap: %s", path, strerror(errno));
		free(ps);
		return rc;
	}
	ps->hdr = (struct pstats_hdr *)ps->base;
	ps->workers = (struct pstats_worker *)(ps->base + sizeof(struct pstats_hdr));
	keep_header(ps, &hdr);
	*out = ps;
	return 0;
}

void pstats_close(struct pstats *ps)
{
	if (!ps)
		return;
	munmap(ps->base, ps->len);
	free(ps);
}

struct pstats_worker *pstats_worker(struct pstats *ps, unsigned i)
{
	BUG_ON(i >= ps->nworkers);
	return &ps->workers[i];
}

void pstats_hit(struct pstats_worker *w, uint8_t kind, const char *key,
		size_t key_len, const struct sockaddr *peer,
		enum pstats_outcome outcome, int64_t now_ms)
{
	uint64_t n = atomic_load_explicit(&w->hit_next, memory_order_relaxed);
	struct pstats_hit *h = &w->hits[n % PSTATS_HITS];
	uint32_t seq = atomic_load_explicit(&h->seq, memory_order_relaxed);
	char addr[ADDR_STRLEN];

	if (key_len > PSTATS_KEY_MAX)
		key_len = PSTATS_KEY_MAX;
	addr_format(peer, addr, sizeof(addr));
	atomic_store_explicit(&h->seq, seq | 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	h->kind = kind;
	h->outcome = (uint8_t)outcome;
	h->key_len = (uint8_t)key_len;
	memcpy(h->key, key, key_len);
	h->key[key_len] = '\0';
	h->peer_len = (uint8_t)snprintf(h->peer, sizeof(h->peer), "%s", addr);
	h->time_ms = now_ms;
	atomic_store_explicit(&h->seq, (seq | 1) + 1, memory_order_release);
	atomic_store_explicit(&w->hit_next, n + 1, memory_order_release);
}

unsigned pstats_nworkers(const struct pstats *ps)
{
	return ps->nworkers;
}

const char *pstats_backend(const struct pstats *ps)
{
	return ps->backend;
}

int64_t pstats_started_ms(const struct pstats *ps)
{
	return ps->started_ms;
}

uint64_t pstats_sum(const struct pstats *ps, enum pstat s)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < ps->nworkers; i++)
		sum += atomic_load_explicit(&ps->workers[i].c[s],
					    memory_order_relaxed);
	return sum;
}

const char *pstats_metric(enum pstat s)
{
	return metric_names[s];
}

/* Copies one record if it is stable; false when a writer is inside it. */
static bool hit_read(const struct pstats_hit *h, struct pstats_hit *out)
{
	for (int tries = 0; tries < 16; tries++) {
		uint32_t s1 = atomic_load_explicit(&((struct pstats_hit *)h)->seq,
						   memory_order_acquire);
		if (s1 & 1)
			continue;
		out->kind = h->kind;
		out->outcome = h->outcome;
		out->key_len = h->key_len;
		out->peer_len = h->peer_len;
		out->time_ms = h->time_ms;
		memcpy(out->key, h->key, sizeof(out->key));
		memcpy(out->peer, h->peer, sizeof(out->peer));
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&((struct pstats_hit *)h)->seq,
					 memory_order_relaxed) != s1)
			continue;
		out->key[PSTATS_KEY_MAX] = '\0';
		out->peer[PSTATS_PEER_MAX] = '\0';
		return s1 != 0;
	}
	return false;
}

bool pstats_last_hit(const struct pstats *ps, uint8_t kind, const char *key,
		     size_t key_len, struct pstats_hit *out)
{
	struct pstats_hit h;
	bool found = false;

	if (key_len > PSTATS_KEY_MAX)
		return false;
	for (unsigned i = 0; i < ps->nworkers; i++) {
		for (unsigned j = 0; j < PSTATS_HITS; j++) {
			if (!hit_read(&ps->workers[i].hits[j], &h))
				continue;
			if (h.kind != kind || h.key_len != key_len ||
			    memcmp(h.key, key, key_len) != 0)
				continue;
			if (!found || h.time_ms > out->time_ms) {
				*out = h;
				found = true;
			}
		}
	}
	return found;
}

void pstats_hits_since(const struct pstats *ps, int64_t since_ms,
		       void (*fn)(const struct pstats_hit *h, void *arg),
		       void *arg)
{
	struct pstats_hit h;

	for (unsigned i = 0; i < ps->hdr->nworkers; i++)
		for (unsigned j = 0; j < PSTATS_HITS; j++)
			if (hit_read(&ps->workers[i].hits[j], &h) &&
			    h.time_ms >= since_ms)
				fn(&h, arg);
}

const char *pstats_outcome_name(uint8_t outcome)
{
	switch (outcome) {
	case HIT_ANSWERED:
		return "answered";
	case HIT_MISSED:
		return "missed";
	case HIT_FAILED:
		return "failed";
	case HIT_STATELESS:
		return "stateless";
	}
	return "unknown";
}
