/* `shadowtap convert`: reads a recording in any format and writes it in the format
 * the output name says (.stap, .gor, gzip or not, or .ndjson). Owns: its command line. */
#ifndef ST_REC_CONVERT_H
#define ST_REC_CONVERT_H

/* `shadowtap convert IN OUT`: argv[0] is "convert". Returns an exit code. */
int recording_convert_main(int argc, char **argv);

#endif
