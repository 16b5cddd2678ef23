"""The results file's png: acme-edge ÷ peer per core, per scenario, one
panel per worker count (gnuplot; none without it)."""
import os
import shutil
import subprocess

from .accounting import ratio_summary
from .common import PEERS, say
from .scenarios import compared


# What every chart of the bench starts with: a clustered histogram, a
# panel per worker count. %-formatted with (height, png path).
HISTOGRAM = """set terminal pngcairo size 1200,%d font "sans,9"
set output "%s"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
"""


def gnuplot(gp, png_path):
    """Runs the script gp; png_path, or None when gnuplot failed."""
    r = subprocess.run(["gnuplot", gp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    if r.returncode != 0:
        say("gnuplot: " + r.stdout.strip()[-500:])
        return None
    return png_path


def chart(ctx, results, png_path):
    """Ratios per scenario and peer, one panel per worker count."""
    if not shutil.which("gnuplot"):
        return None
    data = os.path.join(ctx.work, "ratios.dat")
    ids = [(s.id, s.kind) for s in compared()]
    if not any(ratio_summary(results, w, sid, p, kind)[0] is not None
               for w in ctx.worker_counts for sid, kind in ids for p in PEERS):
        return None     # a partial run (floods alone): no ratio to draw
    with open(data, "w") as f:
        for w in ctx.worker_counts:
            f.write("# workers=%d\n" % w)
            for sid, kind in ids:
                vals = []
                for p in PEERS:
                    r, _ = ratio_summary(results, w, sid, p, kind)
                    if r is not None and kind == "mem":
                        r = 1 / r if r > 0 else None     # higher = acme-edge better
                    vals.append("%.3f" % r if r else "-")
                label = sid + (" (inv)" if kind == "mem" else "")
                f.write('"%s" %s\n' % (label, " ".join(vals)))
            f.write("\n\n")
    gp = os.path.join(ctx.work, "ratios.gp")
    n = len(ctx.worker_counts)
    with open(gp, "w") as f:
        f.write(HISTOGRAM % (420 * n, png_path))
        f.write("""set yrange [0:*]
set xtics rotate by -35 left
set bmargin 7
set rmargin 8
set multiplot layout %d,1 title "acme-edge ÷ peer, per core of server CPU (higher is better for acme-edge; memory inverted)"
""" % n)
        for i, w in enumerate(ctx.worker_counts):
            f.write('set title "workers=%d%s"\n' % (
                w, " (both workers on one core)" if w > 1 else ""))
            f.write('plot "%s" index %d using 2:xtic(1) title "vs nginx", '
                    '"" index %d using 3 title "vs haproxy", '
                    '"" index %d using 4 title "vs haproxy+splice", '
                    '1 with lines lc rgb "black" dt 2 notitle, '
                    '1.5 with lines lc rgb "red" dt 3 title "1.5×"\n' % (data, i, i, i))
        f.write("unset multiplot\n")
    return gnuplot(gp, png_path)

