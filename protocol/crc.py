# CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0; crc16(b"123456789")
# is 0x29B1.  Used by telemetry frames and by firmware/persist.py.
#
#   crc16_pure(data, crc=0xFFFF)  table-driven pure Python (runs on MicroPython)
#   crc16(data, crc=0xFFFF)       crcmod's C implementation when crcmod imports (host), else
#                                 crc16_pure; tests prove the two identical
#
# data is bytes, bytearray or memoryview.  With xorout 0 the register is the result, so a
# message may be fed in pieces: crc16(b, crc16(a)) == crc16(a + b).

from array import array

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CRC16_INIT = const(0xFFFF)
_POLY = const(0x1021)

# The 256 CRCs of one byte, as 16-bit words: 512 bytes (a tuple of ints is twice that on
# MicroPython).  Built at import by the module's own code, which is freed afterwards.
_TABLE = array("H")
for _byte in range(256):
    _crc = _byte << 8
    for _ in range(8):
        if _crc & 0x8000:
            _crc = ((_crc << 1) ^ _POLY) & 0xFFFF
        else:
            _crc = (_crc << 1) & 0xFFFF
    _TABLE.append(_crc)


def crc16_pure(data, crc=CRC16_INIT):
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


try:
    import crcmod.predefined
    # crcmod's function is crcfun(data, crc=init): with xorout 0 it continues from crc as given,
    # the same contract as crc16_pure.
    crc16 = crcmod.predefined.mkPredefinedCrcFun("crc-ccitt-false")
    CRC16_BACKEND = "crcmod"
except ImportError:
    crc16 = crc16_pure
    CRC16_BACKEND = "pure"
