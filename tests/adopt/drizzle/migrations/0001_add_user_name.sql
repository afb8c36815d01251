ALTER TABLE "users" ADD COLUMN "name" text;--> statement-breakpoint
CREATE INDEX "users_name_idx" ON "users" USING btree ("name");