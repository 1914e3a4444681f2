import { Module } from '@nestjs/common';

/** Operator-facing REST API. (Scaffold: feature modules are added here.) */
@Module({})
export class ApiModule {}
