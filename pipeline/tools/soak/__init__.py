"""``fraud soak``: a long run under faults (kills, a broker restart) with the accounting of every id
and every process's memory (runner.py); its arithmetic and chart are in figures.py."""
