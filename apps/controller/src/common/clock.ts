import { Injectable } from '@nestjs/common';

/** The clock as a dependency, so services that compare times can be tested at set times. */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }
}
