"""The local cloud's node supervisor: `python -m occopus._boot_node
--control DIR --dir DIR --address ADDRESS`, started by the local cloud for
each node it creates (not by hand)."""

import argparse
import sys

from occopus._native import boot_node


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m occopus._boot_node")
    parser.add_argument("--control", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--address", required=True)
    args = parser.parse_args(argv)
    return boot_node(args.control, args.dir, args.address)


if __name__ == "__main__":
    sys.exit(main())
