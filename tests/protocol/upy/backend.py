import sys

from protocol import crc

print(crc.CRC16_BACKEND, sys.implementation.name)
