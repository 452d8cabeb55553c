# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_adudiff_global_optspecs
    string join \n h/help V/version
end

function __fish_adudiff_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_adudiff_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_adudiff_using_subcommand
    set -l cmd (__fish_adudiff_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c adudiff -n "__fish_adudiff_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_needs_command" -s V -l version -d 'Print version'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "generate" -d 'Make a verified standard-v2 delta from <SOURCE> to <TARGET>'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "release" -d 'From build output to an importable update: deltas from 1–4 sources + import manifest'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "recompress" -d 'Re-gzip an SWU\'s images reproducibly (zlib level 9, memLevel 9, OS 3) and re-sign it'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "apply" -d 'Apply a delta with the library (the same code as libadudiffapi.so)'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "dump" -d 'Print a delta as JSON: format, target/source items, recipes, blobs and sizes'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "manifest" -d 'Print import-manifest data for a delta: relatedFiles properties or the whole manifest'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "completions" -d 'Print a shell completion script for adudiff'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "man" -d 'Print adudiff\'s man page (roff), or write one page per command into a folder'
complete -c adudiff -n "__fish_adudiff_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l format -d 'Delta format' -r -f -a "standard\t'the format Microsoft\'s delta processor reads: applies on every device (Microsoft\'s libadudiffapi.so or this one)'
extended\t'the target as built (no recompress, no re-sign): gzip data zlib does not reproduce travels as text and is rebuilt exactly (GNU gzip re-encoded, others by deflate corrections), zstd frames this build\'s libzstd makes as their content. Only adudiffapi applies it; devices on Microsoft\'s library fall back to the full image. Written only where it is smaller than standard'"
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l log-dir -d 'Write diff.json there' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l work-dir -d 'Temporary files (default: the delta\'s folder)' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l zstd-level -d 'zstd level for patch-from candidates (1–22)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l bsdiff-max-mib -d 'Skip bsdiff for segments/windows larger than this many MiB' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l segment-mib -d 'Diff large contents in segments of this many MiB (0 = whole)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l margin-mib -d 'Basis window margin around each aligned segment, in MiB' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l bsdiff-small-match -d 'qbsdiff\'s small-match threshold' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l files-diff-level -d 'zstd level for changed files and metadata (1–22)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l files-new-level -d 'zstd level for new files (1–22)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l files-frame-level -d 'zstd level of the image assembly frames (1–22)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l files-frame-mib -d 'Image bytes per assembly frame, in MiB (1–128)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l threads -d 'Worker threads (0 = all cores)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -l no-files -d 'Diff ext2/3/4 images as a whole instead of file by file'
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -s q -l quiet -d 'No progress bars'
complete -c adudiff -n "__fish_adudiff_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l description -d 'Update description (≤ 512 characters)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l handler -d 'Step handler' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l handler-property -d 'A string handler property; repeatable' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l handler-properties -d 'Handler properties as a JSON object (merged; later options win)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l installed-criteria -d 'Shorthand for --handler-property installedCriteria=<s>' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l file -d 'Another payload file of the step (e.g. an install script); repeatable' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l out -d 'Output folder (created)' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l format -d 'Delta format (written per source only where smaller than standard)' -r -f -a "standard\t'the format Microsoft\'s delta processor reads: applies on every device (Microsoft\'s libadudiffapi.so or this one)'
extended\t'the target as built (no recompress, no re-sign): gzip data zlib does not reproduce travels as text and is rebuilt exactly (GNU gzip re-encoded, others by deflate corrections), zstd frames this build\'s libzstd makes as their content. Only adudiffapi applies it; devices on Microsoft\'s library fall back to the full image. Written only where it is smaller than standard'"
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l sign -d 'Signing command for the recompressed sw-description (see `adudiff recompress`)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l jobs -d 'Sources generated at once (0: by available memory, estimated as 512 MiB + 6 x (source + target size) per job)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l threads -d 'Worker threads per generation (0 = cores / jobs)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l zstd-level -d 'zstd level for patch-from candidates (1–22)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l provider -d 'updateId.provider (letters, digits, \'.\', \'-\'; 1-64)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l name -d 'updateId.name (same rules); also names the manifest file' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l version -d 'updateId.version (2-4 numbers, e.g. 1.2.0)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l compat -d 'One compatibility set (1-5 properties); repeat for more sets (≤ 10)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l no-fallback -d 'With --format extended: no standard fallback delta after the extended ones (by default each source\'s extended delta is followed by a standard delta for devices on Microsoft\'s library, as long as the 4 related files of the update allow)'
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l recompress -d 'Recompress the target (as `adudiff recompress`) and ship that'
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -l no-files -d 'Diff ext2/3/4 images as a whole instead of file by file'
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -s q -l quiet -d 'No progress on stderr'
complete -c adudiff -n "__fish_adudiff_using_subcommand release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand recompress" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand apply" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand dump" -s h -l help -d 'Print help'
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l target -d 'The update (whole-manifest form)' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l delta -d 'The delta from <SOURCE> to the target (whole-manifest form)' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l provider -d 'updateId.provider (letters, digits, \'.\', \'-\'; 1-64)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l name -d 'updateId.name (same rules); also names the manifest file' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l version -d 'updateId.version (2-4 numbers, e.g. 1.2.0)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l compat -d 'One compatibility set (1-5 properties); repeat for more sets (≤ 10)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l description -d 'Update description (≤ 512 characters)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l handler -d 'Step handler' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l handler-property -d 'A string handler property; repeatable' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l handler-properties -d 'Handler properties as a JSON object (merged; later options win)' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l installed-criteria -d 'Shorthand for --handler-property installedCriteria=<s>' -r
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -l file -d 'Another payload file of the step (e.g. an install script); repeatable' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand manifest" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand man" -l dir -d 'Write adudiff.1 and adudiff-<command>.1 into this folder instead of printing adudiff.1' -r -F
complete -c adudiff -n "__fish_adudiff_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "generate" -d 'Make a verified standard-v2 delta from <SOURCE> to <TARGET>'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "release" -d 'From build output to an importable update: deltas from 1–4 sources + import manifest'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "recompress" -d 'Re-gzip an SWU\'s images reproducibly (zlib level 9, memLevel 9, OS 3) and re-sign it'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "apply" -d 'Apply a delta with the library (the same code as libadudiffapi.so)'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "dump" -d 'Print a delta as JSON: format, target/source items, recipes, blobs and sizes'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "manifest" -d 'Print import-manifest data for a delta: relatedFiles properties or the whole manifest'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "completions" -d 'Print a shell completion script for adudiff'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "man" -d 'Print adudiff\'s man page (roff), or write one page per command into a folder'
complete -c adudiff -n "__fish_adudiff_using_subcommand help; and not __fish_seen_subcommand_from generate release recompress apply dump manifest completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
