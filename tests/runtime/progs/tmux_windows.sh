# tmux with two windows, one split in two panes (bash | cat), driven by tmux commands: the
# layout, keys sent to each pane, a pane's output piped to a file (pipe-pane), a paste buffer,
# then panes, the session and the server ended. $1: the server's socket. Every read waits
# for what it reads to be there (the server serves panes and commands independently).
S="tmux -S $1"
$S -f /dev/null new-session -d -x 80 -y 24 -s main -n first 'PS1="$ " exec bash --norc --noprofile -i'
$S split-window -h -t main 'exec cat'
$S new-window -t main -n second 'exec sh'
$S list-windows -F '#{window_index} #{window_name} #{window_panes} #{window_layout}'
$S list-panes -t main:0 -F '#{pane_index} #{pane_width}x#{pane_height} #{pane_tty}' \
    | sed 's/[0-9]*$/N/'
$S pipe-pane -t main:0.1 'cat > piped'
$S send-keys -t main:0.1 'through cat' Enter
until [ "$(grep -c 'through cat' piped 2>/dev/null)" = 2 ]; do :; done
tr -d '\r' < piped  # the pty's echo, then what cat wrote back
$S send-keys -t main:0.0 'echo from-bash $((2+3))' Enter
until [ "$($S capture-pane -p -t main:0.0 | grep -c '[^ ]')" = 3 ]; do :; done  # prompt again
$S capture-pane -p -t main:0.0 | grep -v '^$' | sed 's/ *$//'
$S set-buffer -b b1 "buffer text"
$S show-buffer -b b1; echo
$S display-message -p '#{session_name} #{session_windows} #{window_index}'
$S kill-pane -t main:0.1
$S list-panes -a -F '#{window_index}.#{pane_index} #{pane_width}x#{pane_height}'
$S kill-session -t main
$S has-session -t main 2>/dev/null; echo has-session $?
