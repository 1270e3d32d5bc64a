# Copyright: elephant.ha developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``pg_hactl completion bash|zsh``: a completion script generated from the argument parser,
so it always knows every command and option. Use ``source <(pg_hactl completion bash)``, or
the zsh variant (it loads zsh's bashcompinit and reuses the bash function)."""
from __future__ import annotations

from argparse import Namespace

from .cli import ROLE_CHOICES, Parser, command_options, global_options
from .output import FORMATS

VALUE_OPTIONS = ("-c", "--config-file", "-d", "--dcs-url", "--dcs")
FILE_OPTIONS = ("--apply", "--replace", "--file")

BASH_TEMPLATE = r"""# bash completion for pg_hactl: source <(pg_hactl completion bash)
_pg_hactl() {
    local cur prev cmd i opts
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    cmd=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            @VALUE_OPTIONS@) ((i++)) ;;
            -*) ;;
            *) cmd="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$prev" in
        -c|--config-file|@FILE_OPTIONS@)
            if [[ "$prev" != "-c" || -z "$cmd" ]]; then
                COMPREPLY=($(compgen -f -- "$cur")); return 0
            fi ;;
        -f)
            if [[ "$cmd" == "query" ]]; then COMPREPLY=($(compgen -f -- "$cur"))
            else COMPREPLY=($(compgen -W "@FORMATS@" -- "$cur")); fi
            return 0 ;;
        --format) COMPREPLY=($(compgen -W "@FORMATS@" -- "$cur")); return 0 ;;
        -r|--role) COMPREPLY=($(compgen -W "@ROLES@" -- "$cur")); return 0 ;;
    esac
    if [[ -z "$cmd" ]]; then
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "@GLOBAL_OPTIONS@" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur"))
        fi
        return 0
    fi
    case "$cmd" in
@CASES@
        *) opts="" ;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ "$cmd" == "flush" ]]; then
        COMPREPLY=($(compgen -W "restart switchover" -- "$cur"))
    elif [[ "$cmd" == "completion" ]]; then
        COMPREPLY=($(compgen -W "bash zsh" -- "$cur"))
    fi
    return 0
}
complete -o default -F _pg_hactl pg_hactl
"""

ZSH_HEADER = """# zsh completion for pg_hactl: source <(pg_hactl completion zsh)  (after compinit)
autoload -U +X bashcompinit && bashcompinit
"""


def bash_script(parser: Parser) -> str:
    options = command_options(parser)
    cases = "\n".join(f'        {name}) opts="{" ".join(opts)}" ;;' for name, opts in options.items())
    replacements = {
        "@VALUE_OPTIONS@": "|".join(VALUE_OPTIONS),
        "@FILE_OPTIONS@": "|".join(FILE_OPTIONS),
        "@FORMATS@": " ".join(f for f in FORMATS if f != "yml"),
        "@ROLES@": " ".join(ROLE_CHOICES),
        "@GLOBAL_OPTIONS@": " ".join(global_options(parser)),
        "@COMMANDS@": " ".join(options),
        "@CASES@": cases,
    }
    text = BASH_TEMPLATE
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def script(parser: Parser, shell: str) -> str:
    body = bash_script(parser)
    return ZSH_HEADER + body if shell == "zsh" else body


def run(parser: Parser, args: Namespace) -> int:
    print(script(parser, args.shell), end="")
    return 0
