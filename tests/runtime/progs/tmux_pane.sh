# tmux with a detached session whose pane runs a command (on a pty tmux opened through
# /dev/ptmx), read back with capture-pane, then the server killed. $1: the server's socket.
# The pane says when it has written (wait-for); its screen is then read until the last line
# it printed is there (the server reads the pane's output and the command independently).
tmux -S "$1" -f /dev/null new-session -d -x 80 -y 24 \
    'echo hi > out; printf "pane %s\n" "$(tty | sed "s/[0-9]*$/N/")"; stty size; [ "$(ps -o tpgid= -p $$)" -eq $$ ] && echo "pgrp foreground"; tmux wait-for -S printed; exec sleep 100'
echo new-session $?
tmux -S "$1" wait-for printed
cat out
until tmux -S "$1" capture-pane -p | grep -q "^pgrp"; do :; done
tmux -S "$1" capture-pane -p | grep -v '^$'
tmux -S "$1" list-sessions -F '#{session_name} windows=#{session_windows} #{window_width}x#{window_height}'
# the pane's foreground process, as tmux finds it (the pty's foreground group, its command
# line in /proc), once the pane's shell has exec'd sleep
until [ "$(tmux -S "$1" list-panes -F '#{pane_current_command}')" = sleep ]; do :; done
tmux -S "$1" list-panes -F '#{pane_index} #{pane_current_command} dead=#{pane_dead}'
tmux -S "$1" kill-server
echo kill-server $?
tmux -S "$1" has-session 2>/dev/null
echo has-session $?
