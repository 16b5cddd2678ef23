#include "proxy/evict.h"

#include "common/log.h"
#include "proxy/conn.h"

#define CAP_LOG_MS 1000

/* Of the heads of two timer lists, the one armed first (NULL: none). */
static struct conn *oldest(struct worker *w, enum timer_list a,
			   enum timer_list b)
{
	struct conn *x = w->timers[a].head, *y = w->timers[b].head;

	if (!x || !y)
		return x ? x : y;
	return timer_armed_at(w, x) <= timer_armed_at(w, y) ? x : y;
}

/*
 * Closes the connection at the peek longest, other than spare (the one
 * about to become a relay, itself still at the peek).
 */
static void evict_at_peek(struct worker *w, const struct conn *spare)
{
	/* Every connection at the peek is on one of these two lists. */
	struct conn *victim = oldest(w, TL_PEEK, TL_LINGER);

	if (victim && victim == spare) {
		/* The next in spare's list, or the other list's head. */
		struct conn *other = w->timers[victim->tlist == TL_PEEK ? TL_LINGER
									  : TL_PEEK].head;

		victim = victim->timer.next;
		if (!victim || (other && timer_armed_at(w, other) <=
						 timer_armed_at(w, victim)))
			victim = other;
	}
	if (victim) {
		w->cap_evicted[0]++;
		conn_close(w, victim, PS_CLOSE_EVICTED);
	}
}

/* Descriptors the worker's connections hold: one at the peek, two a relay. */
static uint32_t fds_held(const struct worker *w)
{
	return w->at_peek + 2 * w->relaying;
}

void evict_for_accept(struct worker *w)
{
	if (fds_held(w) >= worker_fd_room(w) && w->at_peek >= w->reserve)
		evict_at_peek(w, NULL);
}

void evict_for_descriptor(struct worker *w)
{
	evict_at_peek(w, NULL);
}

bool evict_for_relay(struct worker *w, const struct conn *c)
{
	struct conn *victim;

	/* Its upstream socket is one descriptor more. */
	if (fds_held(w) >= worker_fd_room(w))
		evict_at_peek(w, c);
	if (w->relaying < w->max_conns)
		return true;
	/* Every relay is on one of these, in the order it last moved a byte. */
	victim = oldest(w, TL_IDLE, TL_CONNECT);
	if (!victim || timer_armed_at(w, victim) + RELAY_IDLE_EVICT_MS > w->now_ms) {
		w->cap_refused[1]++;
		return false;
	}
	w->cap_evicted[1]++;
	conn_close(w, victim, PS_CLOSE_EVICTED);
	return true;
}

void evict_refused(struct worker *w)
{
	w->cap_refused[0]++;
}

void evict_log(struct worker *w)
{
	if (!(w->cap_evicted[0] | w->cap_evicted[1] | w->cap_refused[0] |
	      w->cap_refused[1]) || w->now_ms < w->cap_logged_ms + CAP_LOG_MS)
		return;
	log_warn("proxy: at the cap (%u relays, %u at the peek): closed %u at "
		 "the peek and %u relays idle %u ms or more; refused %u with no "
		 "free slot and %u relays with none idle", w->relaying,
		 w->at_peek, w->cap_evicted[0], w->cap_evicted[1],
		 RELAY_IDLE_EVICT_MS, w->cap_refused[0], w->cap_refused[1]);
	w->cap_evicted[0] = w->cap_evicted[1] = 0;
	w->cap_refused[0] = w->cap_refused[1] = 0;
	w->cap_logged_ms = w->now_ms;
}
