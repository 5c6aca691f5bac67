import {
  boundIdentity,
  incarnationAddress,
  incarnationKey,
  isValidHost,
  parseIncarnationKey,
  SchedError,
} from '@sched/core';
import { describe, expect, test } from 'vitest';

describe('incarnation keys', () => {
  test.each([
    { host: '127.0.0.1', port: 5678, startTime: 1_718_000_000_000 },
    { host: 'worker-3.dc1.example.com', port: 1, startTime: 0 },
    { host: 'localhost', port: 65535, startTime: 1 },
  ])('round-trips $host:$port_$startTime', (inc) => {
    const key = incarnationKey(inc);
    expect(key).toBe(`${inc.host}:${inc.port}_${inc.startTime}`);
    expect(parseIncarnationKey(key)).toEqual({
      host: inc.host,
      port: inc.port,
      address: `${inc.host}:${inc.port}`,
      startTime: inc.startTime,
    });
  });

  test('address is host:port', () => {
    expect(incarnationAddress({ host: '10.0.0.5', port: 80 })).toBe('10.0.0.5:80');
  });

  test.each([
    ['10.0.0.5:5678', /no "_"/],
    ['10.0.0.5_1718000000000', /no ":"/],
    ['10.0.0.5:0_1718000000000', /port "0"/],
    ['10.0.0.5:65536_1718000000000', /port "65536"/],
    ['10.0.0.5:abc_1718000000000', /port "abc"/],
    ['10.0.0.5:5678_', /start time ""/],
    ['10.0.0.5:5678_-1', /start time "-1"/],
    ['10.0.0.5:5678_17e9', /start time "17e9"/],
    ['300.0.0.5:5678_1', /host "300.0.0.5"/],
    [':5678_1', /host ""/],
    ['bad host:5678_1', /host "bad host"/],
    ['-lead.example:5678_1', /host "-lead.example"/],
    ['[::1]:5678_1', /host/],
  ])('rejects %j', (key, why) => {
    let caught: unknown;
    try {
      parseIncarnationKey(key);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SchedError);
    expect((caught as SchedError).code).toBe('INCARNATION_KEY_INVALID');
    expect((caught as Error).message).toContain(JSON.stringify(key));
    expect((caught as Error).message).toMatch(why);
    expect((caught as Error).message).toContain('expected host:port_startTime');
  });

  test('refuses to make a key that could not be parsed back', () => {
    expect(() => incarnationKey({ host: 'a b', port: 1, startTime: 1 })).toThrow(/host "a b"/);
    expect(() => incarnationKey({ host: 'h', port: 0, startTime: 1 })).toThrow(/port 0/);
    expect(() => incarnationKey({ host: 'h', port: 1, startTime: 1.5 })).toThrow(/startTime 1.5/);
  });

  test('hosts: IPv4 addresses and hostnames', () => {
    expect(isValidHost('192.168.1.254')).toBe(true);
    expect(isValidHost('db-1')).toBe(true);
    expect(isValidHost('256.1.1.1')).toBe(false);
    expect(isValidHost('a..b')).toBe(false);
    expect(isValidHost('x'.repeat(64))).toBe(false);
  });
});

describe('boundIdentity', () => {
  test('the advertised port, when set, names the node; the bound port is where it listens', () => {
    expect(boundIdentity({ host: '10.0.0.5' }, 5678, 1_718_000_000_000)).toEqual({
      address: '10.0.0.5:5678',
      listenAddress: '10.0.0.5:5678',
      key: '10.0.0.5:5678_1718000000000',
    });
    expect(boundIdentity({ host: '10.0.0.5', advertisePort: 15678 }, 5678, 1_718_000_000_000)).toEqual({
      address: '10.0.0.5:15678',
      listenAddress: '10.0.0.5:5678',
      key: '10.0.0.5:15678_1718000000000',
    });
  });
});
